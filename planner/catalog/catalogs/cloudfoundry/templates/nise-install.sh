#!/bin/bash
# Installs {{.Component}} ({{job .Release .Component}}) of cf-release {{.Release}} on {{.Node}} with nise_bosh.
set -eu
release=/var/vcap/releases/cf-release
if [ ! -d "$release/.git" ]; then
  echo "cf-release {{.Release}} is not on this node: put it in $release (the engine's mirror does not carry it)" >&2
  exit 1
fi
cd /var/vcap/nise_bosh
bundle exec ./bin/nise-bosh -y -n {{.Node}} -i {{.Index}} "$release" /var/vcap/deploy/manifest.yml {{job .Release .Component}}
