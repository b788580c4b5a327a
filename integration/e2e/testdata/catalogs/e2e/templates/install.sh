mkdir -p /var/lib/e2e
echo "{{.Component}} install" >> /var/lib/e2e/runs
echo "installing {{.Component}} {{.Index}} on {{.Node}}"
sleep "$(cat /var/lib/e2e/sleep 2>/dev/null || echo 0)"
echo "{{.Component}} runtime line on {{.Node}}" >> /var/log/e2e-{{.Component}}.log
