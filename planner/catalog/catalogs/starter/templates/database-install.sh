conf=/etc/postgresql/15/main
if [ ! -d "$conf" ]; then pg_createcluster 15 main; fi
sed -i "s/^#\?listen_addresses.*/listen_addresses = '{{.Node}},127.0.0.1'/" "$conf/postgresql.conf"
grep -q 'deployment-engine' "$conf/pg_hba.conf" || echo 'host all all 0.0.0.0/0 md5 # deployment-engine' >> "$conf/pg_hba.conf"
# Create the role and database once, with the cluster up for a moment.
pg_ctlcluster 15 main start 2>/dev/null || true
for i in $(seq 1 30); do su postgres -c 'psql -qAtc "SELECT 1"' >/dev/null 2>&1 && break; sleep 0.5; done
su postgres -c "psql -qAtc \"SELECT 1 FROM pg_roles WHERE rolname='de'\"" | grep -q 1 || su postgres -c "psql -qc \"CREATE ROLE de LOGIN PASSWORD 'de'\""
su postgres -c "psql -qAtc \"SELECT 1 FROM pg_database WHERE datname='de'\"" | grep -q 1 || su postgres -c "psql -qc 'CREATE DATABASE de OWNER de'"
pg_ctlcluster 15 main stop
