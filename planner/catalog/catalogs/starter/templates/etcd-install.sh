mkdir -p /var/lib/etcd
touch /var/log/etcd-de.log
