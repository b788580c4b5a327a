mkdir -p /var/lib/bench
echo "{{.Component}} on {{.Node}}" > /var/lib/bench/{{.Component}}.conf
