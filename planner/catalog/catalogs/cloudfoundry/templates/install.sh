{{- if eq .Props.Adduser.N 1}}
id -u {{.Props.User}} >/dev/null 2>&1 || { echo "user {{.Props.User}} is missing" >&2; exit 1; }
{{- end}}
if [ ! -d /var/vcap/nise_bosh ]; then
  git clone --depth 1 http://{{.Props.Home}}:50000/mirror/nise_bosh.git /var/vcap/nise_bosh
  (cd /var/vcap/nise_bosh && gem install bundler --no-document && bundle install --local)
fi
/var/vcap/deploy/install-{{.Component}}.sh
