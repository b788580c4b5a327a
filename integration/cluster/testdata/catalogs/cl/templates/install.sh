mkdir -p /var/lib/cl
echo "{{.Component}} start" >> /var/lib/cl/runs
# Longer than the tests' AckWait, and talking all the way.
for i in 1 2 3 4 5 6; do echo "{{.Component}} on {{.Node}}: working $i"; sleep 0.25; done
echo "{{.Component}} end" >> /var/lib/cl/runs
