/var/vcap/jobs/haproxy/bin/haproxy_ctl reload 2>/dev/null || monit restart haproxy
