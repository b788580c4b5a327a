# Take {{.TargetComponent}} on {{.Target}} out of haproxy before it changes: no new
# request goes to it, and the ones it serves finish first.
de_admin() { timeout 5 bash -c 'exec 5<>/dev/tcp/127.0.0.1/9911 && printf "%s\n" "$1" >&5 && cat <&5' _ "$1"; }
if ! de_admin "show info" | grep -q '^Name: HAProxy'; then
  echo "haproxy does not run here yet: nothing to drain"
  exit 0
fi
srv=$(de_admin "show servers state {{.TargetComponent}}" | awk '$5 == "{{.Target}}" {print $4; exit}')
if [ -z "$srv" ]; then
  echo "haproxy has no server at {{.Target}} yet: nothing to drain"
  exit 0
fi
out=$(de_admin "set server {{.TargetComponent}}/$srv state maint")
if [ -n "$(printf '%s' "$out" | tr -d '[:space:]')" ]; then
  echo "haproxy refused to take $srv out: $out" >&2
  exit 1
fi
for i in $(seq 1 100); do
  cur=$(de_admin "show stat" | awk -F, -v s="$srv" '$1 == "{{.TargetComponent}}" && $2 == s {print $5}')
  if [ "${cur:-0}" = 0 ]; then
    echo "$srv ({{.Target}}) out of service, no request in flight"
    exit 0
  fi
  sleep 0.1
done
echo "$srv ({{.Target}}) out of service; $cur request(s) still in flight after 10 s"
