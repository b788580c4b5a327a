#!/usr/bin/env bash
# The demo: 4 local test nodes, the mirror, the engine, the starter stack
# deployed onto them, and the console URL. Run as root: `make demo`.
# Stop it all with: deploy/demo.sh down
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=bin/deployment-engine
TESTBED=bin/de-testbed
DATA=${DEMO_DATA:-./demo-data}
NAME=demo
PORT=${DEMO_PORT:-50000}

stop_engine() {
  if [ -f "$DATA/engine.pid" ]; then
    pid=$(cat "$DATA/engine.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$DATA/engine.pid"
  fi
}

if [ "${1:-}" = down ]; then
  stop_engine
  $TESTBED down --name $NAME
  echo "demo stopped (data kept in $DATA)"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "the demo needs root: its nodes are network namespaces" >&2; exit 1; }

mkdir -p "$DATA"
echo "== bringing up 4 test nodes"
$TESTBED down --name $NAME >/dev/null 2>&1 || true
$TESTBED up --nodes 4 --name $NAME > "$DATA/testbed.txt"
cat "$DATA/testbed.txt"
mapfile -t IPS < <(awk 'NF==2 && $1!="home" {print $1}' "$DATA/testbed.txt")
KEY=$(awk 'NF==2 && $1!="home" {print $2; exit}' "$DATA/testbed.txt")
HOME_IP=$(awk '$1=="home" {print $2}' "$DATA/testbed.txt")

echo "== syncing the starter catalog's packages into the mirror"
$BIN mirror sync --catalog starter --data "$DATA"

echo "== starting the engine"
stop_engine
# The nodes are new: so is the engine's state (their pinned host keys and
# ownership with it). The mirror is kept.
rm -rf "$DATA/jetstream" "$DATA/logs"
$BIN serve --data "$DATA" --listen ":$PORT" >"$DATA/engine.log" 2>&1 &
echo $! > "$DATA/engine.pid"
for _ in $(seq 1 150); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || { echo "the engine did not start; its log:" >&2; tail -20 "$DATA/engine.log" >&2; exit 1; }
export DE_SERVER="http://127.0.0.1:$PORT" DE_API_TOKEN="$(cat "$DATA/api-token")"

cat > "$DATA/starter.json" <<JSON
{
  "components": {
    "haproxy": ["${IPS[0]}"],
    "web": ["${IPS[1]}", "${IPS[2]}"],
    "nats": ["${IPS[1]}", "${IPS[3]}"],
    "redis": ["${IPS[2]}"],
    "database": ["${IPS[3]}"],
    "etcd": ["${IPS[0]}"]
  },
  "properties": {
    "catalog": "starter", "domain": "demo.local", "home": "$HOME_IP",
    "disksize": 1, "checkdisk": 1, "adduser": 0, "key": "$KEY"
  }
}
JSON
echo "== submitting the config (the engine checks every node)"
$BIN config set "$DATA/starter.json"
echo "== deploying"
$BIN deploy --follow
echo
echo "== status (the agents report every 5 s)"
for _ in $(seq 1 15); do $BIN status >/dev/null 2>&1 && break; sleep 2; done
$BIN status || true
echo
echo "Console:  http://127.0.0.1:$PORT/   (token: $DE_API_TOKEN)"
echo "The site: curl http://${IPS[0]}/   (haproxy in front of the web nodes)"
echo "Stop:     deploy/demo.sh down"
