# The rendered config must hold before haproxy reloads.
if command -v haproxy >/dev/null 2>&1; then haproxy -c -q -f /etc/haproxy/de.cfg; fi
