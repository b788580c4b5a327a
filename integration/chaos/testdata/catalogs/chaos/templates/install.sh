mkdir -p /var/lib/chaos
echo "{{.Component}} start" >> /var/lib/chaos/runs
# Longer than the trials' AckWait, and talking all the way: output must not
# kill a step whose engine died.
for i in 1 2 3 4 5 6 7 8; do echo "{{.Component}} on {{.Node}}: working $i"; sleep 0.25; done
echo "{{.Component}} end" >> /var/lib/chaos/runs
