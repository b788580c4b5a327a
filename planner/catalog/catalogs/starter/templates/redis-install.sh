mkdir -p /run/redis /var/log/redis /var/lib/redis
chown redis:redis /run/redis /var/log/redis /var/lib/redis
