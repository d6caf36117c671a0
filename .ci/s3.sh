#!/usr/bin/env bash
# Starts an S3 server for the tests, idempotently: versitygw with a POSIX
# backend under /tmp/plaza-s3, listening on 127.0.0.1:7070 only, root
# credentials plazatest / plazatestsecret, bucket plaza-test. Installs
# versitygw with `go install` when it is missing. Logs go to stderr; stdout
# is only the environment to use, so
#
#   eval "$(.ci/s3.sh)"
#
# sets up the current shell. `.ci/s3.sh stop` stops the server it started.
set -euo pipefail

VGW_VERSION="${VGW_VERSION:-v1.8.0}"
ADDR=127.0.0.1:7070
DIR=/tmp/plaza-s3
ACCESS=plazatest
SECRET=plazatestsecret
BUCKET=plaza-test
REGION=us-east-1
PIDFILE="$DIR/versitygw.pid"
LOGFILE="$DIR/versitygw.log"
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"

log() { printf 's3.sh: %s\n' "$*" >&2; }

# s3 METHOD PATH prints the HTTP status of a SigV4-signed request with an
# empty body ("000" when nothing answers).
s3() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS:$SECRET" \
    -H "x-amz-content-sha256: $EMPTY_SHA256" \
    -X "$1" "http://$ADDR$2" || true
}

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

if [ "${1:-}" = stop ]; then
  if pid=$(running_pid); then
    kill "$pid"
    log "stopped versitygw (pid $pid)"
  else
    log "versitygw is not running (no live pid in $PIDFILE)"
  fi
  rm -f "$PIDFILE"
  exit 0
fi

if ! command -v versitygw >/dev/null 2>&1; then
  log "installing versitygw $VGW_VERSION"
  go install "github.com/versity/versitygw/cmd/versitygw@$VGW_VERSION" >&2
fi

code=$(s3 GET /)
case "$code" in
  200)
    log "an S3 server with our credentials already answers on $ADDR"
    ;;
  000)
    mkdir -p "$DIR/root"
    log "starting versitygw on $ADDR (data in $DIR/root, log in $LOGFILE)"
    # Credentials through the environment, not the command line, so they
    # do not show in ps. setsid and the redirections detach it from this
    # shell, so $(.ci/s3.sh) returns.
    ROOT_ACCESS_KEY="$ACCESS" ROOT_SECRET_KEY="$SECRET" \
      setsid versitygw --port "$ADDR" --region "$REGION" --quiet \
      posix "$DIR/root" </dev/null >>"$LOGFILE" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 60); do
      code=$(s3 GET /)
      [ "$code" = 200 ] && break
      if ! running_pid >/dev/null; then
        log "versitygw exited; last lines of $LOGFILE:"
        tail -n 20 "$LOGFILE" >&2
        exit 1
      fi
      sleep 0.5
    done
    if [ "$code" != 200 ]; then
      log "versitygw does not answer on $ADDR (last status $code)"
      exit 1
    fi
    ;;
  *)
    log "something else listens on $ADDR: it answered $code to a signed ListBuckets with our credentials"
    exit 1
    ;;
esac

code=$(s3 PUT "/$BUCKET")
case "$code" in
  200 | 409) ;; # 409: BucketAlreadyOwnedByYou
  *)
    log "could not create bucket $BUCKET (status $code)"
    exit 1
    ;;
esac
log "bucket $BUCKET ready"

cat <<ENV
export PLAZA_TEST_S3_URL='s3://$BUCKET?endpoint=$ADDR&region=$REGION&secure=false&path_style=true'
export PLAZA_TEST_S3_ACCESS_KEY=$ACCESS
export PLAZA_TEST_S3_SECRET_KEY=$SECRET
ENV
