touch /var/log/nats-server.log
