mkdir -p /var/lib/e2e
if [ -e /var/lib/e2e/broken ]; then echo "delta cannot be installed here: /var/lib/e2e/broken" >&2; exit 1; fi
echo "delta install" >> /var/lib/e2e/runs
echo "installing delta {{.Index}} on {{.Node}}"
