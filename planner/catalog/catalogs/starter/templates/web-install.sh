mkdir -p /var/www/de-web /var/log/de-web
cat > /var/www/de-web/index.html <<PAGE
<!doctype html>
<title>web {{.Index}}</title>
<h1>web {{.Index}} on $(hostname) ({{.Node}})</h1>
PAGE
nginx -t -c /etc/de-web/nginx.conf
