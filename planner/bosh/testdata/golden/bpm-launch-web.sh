# Process web of job web, from its config/bpm.yml, as the
# deployment engine's bpm stand-in (/var/vcap/jobs/bpm/bin/bpm) runs it: no container.
executable='/var/vcap/packages/web/bin/web'
args=('--name' 'it'\''s "quoted"' '$(touch @ROOT@/owned)' '`touch @ROOT@/owned`' 'line1
line2' '*' '-n' '2424' 'true' '')
env=('EVIL='\''; touch @ROOT@/owned; echo '\''' 'FOO=BAR' 'HOME=/var/vcap/data/web' 'LANG=en_US.UTF-8' 'MULTI=a
b' 'PATH=/var/vcap/jobs/web/bin:/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin:.' 'TMPDIR=/var/vcap/data/web/mytmp')
workdir='/var/vcap/jobs/web'
pre_start='/var/vcap/jobs/web/bin/bpm-pre-start'
user=vcap
open_files='1234'
processes=''
core_blocks='4'
ephemeral_disk=1
persistent_disk=1
shutdown_signal=TERM
notes=('limits.memory 1G is not enforced: bpm'\''s is a cgroup limit of its container, which the engine does not make' 'capabilities NET_BIND_SERVICE are not granted: the process runs as vcap with none (as root only with unsafe.privileged)' 'additional_volumes are not mounted: without a container the process sees the machine'\''s files as vcap may')
