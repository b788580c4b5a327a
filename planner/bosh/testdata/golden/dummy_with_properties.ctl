#!/bin/bash

JOB_NAME=dummy_with_properties
RUN_DIR=/var/vcap/sys/run/$JOB_NAME
LOG_DIR=/var/vcap/sys/log/$JOB_NAME
CONFIG_DIR=/var/vcap/jobs/$JOB_NAME/config
EPHEMERAL=/var/vcap/data/$JOB_NAME
PERSISTENT=/var/vcap/store/$JOB_NAME
PIDFILE=$RUN_DIR/$JOB_NAME.pid
RUNAS=vcap

exec 1>> $LOG_DIR/$JOB_NAME.stdout.log
exec 2>> $LOG_DIR/$JOB_NAME.stderr.log

case $1 in

  start)
    mkdir -p $RUN_DIR $LOG_DIR $EPHEMERAL
    chown -R $RUNAS:$RUNAS $RUN_DIR $LOG_DIR $EPHEMERAL $PERSISTENT
    
    echo 'from the config'

    echo "release_name=dummy"
    echo "release_version=0.2-dev"

    ## Start Code Here
    echo 1 >> $PIDFILE

    ;;

  stop)
    rm -f $PIDFILE
    ;;

  *)
  echo "Usage: dummy_with_properties_ctl {start|stop}" ;;
esac
