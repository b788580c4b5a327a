/usr/sbin/nats-server --version
touch /var/log/nats-server.log
