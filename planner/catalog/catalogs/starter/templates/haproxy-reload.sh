# A seamless reload: the master starts new workers with the new config on
# the same sockets; the old ones finish their requests. Its pid stays.
haproxy -c -q -f /etc/haproxy/de.cfg
kill -USR2 "$(cat /run/de-haproxy.pid)"
