# The rendered nginx config must hold before anything restarts (nginx
# comes with the install, after a first upload).
if command -v nginx >/dev/null 2>&1; then nginx -t -q -c /etc/de-web/nginx.conf; fi
