mkdir -p /var/lib/bench
sleep 1
cp /etc/bench-svc.conf /var/lib/bench/{{.Component}}.conf
