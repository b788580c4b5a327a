# A graceful reload: the old process finishes its requests.
haproxy -c -f /etc/haproxy/de.cfg
/usr/sbin/haproxy -f /etc/haproxy/de.cfg -sf $(cat /run/de-haproxy.pid) >>/var/log/de-haproxy.log 2>&1
