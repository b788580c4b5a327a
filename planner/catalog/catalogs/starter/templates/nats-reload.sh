# nats-server reloads its routes on SIGHUP.
kill -HUP $(cat /run/de-nats.pid)
