haproxy -c -f /etc/haproxy/de.cfg
