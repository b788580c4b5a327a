mkdir -p /var/www/de-web /var/log/de-web
nginx -t -c /etc/de-web/nginx.conf
