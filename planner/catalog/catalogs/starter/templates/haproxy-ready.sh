# Put {{.TargetComponent}} on {{.Target}} back into haproxy now that it is healthy,
# and wait until haproxy's own check finds it up.
de_admin() { timeout 5 bash -c 'exec 5<>/dev/tcp/127.0.0.1/9911 && printf "%s\n" "$1" >&5 && cat <&5' _ "$1"; }
if ! de_admin "show info" | grep -q '^Name: HAProxy'; then
  echo "haproxy does not run here yet: nothing to put back"
  exit 0
fi
srv=$(de_admin "show servers state {{.TargetComponent}}" | awk '$5 == "{{.Target}}" {print $4; exit}')
if [ -z "$srv" ]; then
  echo "haproxy has no server at {{.Target}}: its next reload adds it"
  exit 0
fi
out=$(de_admin "set server {{.TargetComponent}}/$srv state ready")
if [ -n "$(printf '%s' "$out" | tr -d '[:space:]')" ]; then
  echo "haproxy refused to put $srv back: $out" >&2
  exit 1
fi
for i in $(seq 1 150); do
  st=$(de_admin "show stat" | awk -F, -v s="$srv" '$1 == "{{.TargetComponent}}" && $2 == s {print $18}')
  case "$st" in UP*) echo "$srv ({{.Target}}) back in service"; exit 0 ;; esac
  sleep 0.1
done
echo "$srv ({{.Target}}) is back but haproxy reports it ${st:-unknown} after 15 s" >&2
exit 1
