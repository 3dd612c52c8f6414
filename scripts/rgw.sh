#!/usr/bin/env bash
# rgw.sh - start/stop a throwaway Ceph RADOS Gateway (S3 server) on 127.0.0.1.
#
# Why: klstore's integration tests and benchmarks need a real S3 implementation
# (SigV4, conditional PUTs, ranged GETs, real error codes), not a mock. This
# script builds the smallest Ceph cluster that can serve S3: one monitor, one
# in-memory OSD (memstore) and one radosgw, all confined to a single directory
# and to loopback addresses. Nothing is read from or written to /etc/ceph or
# /var/lib/ceph: every Ceph command gets `-c DIR/ceph.conf` and that file points
# all data, logs, pid files and admin sockets into DIR.
#
# Usage:
#   scripts/rgw.sh start  [DIR]   # (re)create DIR, start everything, print env
#   scripts/rgw.sh stop   [DIR]   # stop radosgw, osd, mon by their pid files
#   scripts/rgw.sh status [DIR]   # exit 0 if all daemons run and S3 answers
# DIR defaults to ${KL_RGW_DIR:-/tmp/klstore-rgw}.
#
# `start` prints (and writes to DIR/env) shell lines to eval:
#   export KL_S3_ENDPOINT=http://127.0.0.1:PORT  KL_S3_BUCKET=...
#   export KL_S3_ACCESS_KEY=...  KL_S3_SECRET_KEY=...  KL_S3_REGION=us-east-1
#
# Environment knobs: KL_RGW_DIR, KL_RGW_PORT (default: 7480 if free, else any
# free port), KL_RGW_ACCESS_KEY, KL_RGW_SECRET_KEY, KL_RGW_BUCKET,
# KL_RGW_TIMEOUT (seconds for the whole start, default 60).
#
# Note for S3 clients (curl 7.88 --aws-sigv4, libcurl CURLOPT_AWS_SIGV4): send
# an `x-amz-content-sha256` header (e.g. UNSIGNED-PAYLOAD). Without it curl
# signs the request with the empty-body hash while radosgw assumes
# UNSIGNED-PAYLOAD, and every request fails with 403 SignatureDoesNotMatch.
set -euo pipefail

readonly MARKER=.klstore-rgw            # marks a DIR this script owns (safe to wipe)
readonly DAEMONS_STOP_ORDER=(client.rgw osd.0 mon.a)
readonly UNSIGNED=(-H "x-amz-content-sha256: UNSIGNED-PAYLOAD")

DIR=""
CONF=""
ACCESS_KEY="${KL_RGW_ACCESS_KEY:-klstoreaccess}"
SECRET_KEY="${KL_RGW_SECRET_KEY:-klstoresecret}"
BUCKET="${KL_RGW_BUCKET:-klstore-test}"
REGION=us-east-1
DEADLINE=0

log() { echo "rgw.sh: $*" >&2; }

usage() {
  echo "usage: $0 {start|stop|status} [DIR]   (DIR defaults to \${KL_RGW_DIR:-/tmp/klstore-rgw})" >&2
  exit 2
}

# --- helpers -----------------------------------------------------------------

# Print the last lines of a log so a failure is diagnosable from CI output alone.
show_log_tail() {
  local f=$1
  if [ -s "$f" ]; then
    echo "---- last lines of $f ----" >&2
    tail -n 25 "$f" >&2
    echo "----" >&2
  fi
}

# fail MESSAGE [LOGFILE...]: report, show logs; the EXIT trap of `start` then
# stops whatever was already started.
fail() {
  local msg=$1; shift
  log "ERROR: $msg"
  local f
  for f in "$@"; do show_log_tail "$f"; done
  exit 1
}

time_left() { echo $((DEADLINE - SECONDS)); }

# A port counts as taken if something accepts connections on 127.0.0.1:PORT.
port_in_use() {
  timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# pick_port PREFERRED: PREFERRED if free, else the first free port above it.
pick_port() {
  local p=$1 last=$(($1 + 200))
  while [ "$p" -le "$last" ]; do
    port_in_use "$p" || { echo "$p"; return 0; }
    p=$((p + 1))
  done
  return 1
}

# pid_of NAME: PID from DIR/run/NAME.pid, printed only if that process is alive
# and really is our daemon (its command line names our ceph.conf). This guards
# against stale pid files whose PID has been reused by an unrelated process.
pid_of() {
  local pidfile="$DIR/run/$1.pid" pid
  [ -r "$pidfile" ] || return 1
  pid=$(tr -dc '0-9' <"$pidfile")
  [ -n "$pid" ] || return 1
  is_alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONF" || return 1
  echo "$pid"
}

# True if PID runs and is not a zombie. Daemonized Ceph processes are reparented
# to PID 1, which in containers may reap them only lazily, so `kill -0` alone
# would keep reporting an exited daemon as alive.
is_alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# wait_gone PID TENTHS: wait up to TENTHS/10 seconds for PID to exit.
wait_gone() {
  local pid=$1 i
  for ((i = 0; i < $2; i++)); do
    is_alive "$pid" || return 0
    sleep 0.1
  done
  ! is_alive "$pid"
}

# stop_daemon NAME: SIGTERM, wait up to 10 s, then SIGKILL. Only touches the
# PID recorded in our own pid file (and verified by pid_of).
stop_daemon() {
  local name=$1 pid
  if pid=$(pid_of "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 100; then
      log "$name (pid $pid) ignored SIGTERM for 10 s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 50 || log "WARNING: $name (pid $pid) still alive after SIGKILL"
    fi
  fi
  rm -f "$DIR/run/$name.pid"
}

stop_all() {
  local name
  [ -d "$DIR/run" ] || return 0
  # radosgw first (it is a client of the OSD), then the OSD, then the mon.
  for name in "${DAEMONS_STOP_ORDER[@]}"; do stop_daemon "$name"; done
}

# set_dir [DIR]: resolve the working directory to an absolute path.
set_dir() {
  DIR=$(realpath -m -- "${1:-${KL_RGW_DIR:-/tmp/klstore-rgw}}")
  case "$DIR" in
    / | /tmp | /root | /home | /var | /etc | /usr) echo "rgw.sh: refusing to use $DIR" >&2; exit 2 ;;
  esac
  CONF="$DIR/ceph.conf"
}

# Wipe DIR, but only if it is empty or was created by this script: `start`
# takes a user-supplied path and must never rm -rf someone's real directory.
reset_dir() {
  if [ -e "$DIR" ] && [ ! -e "$DIR/$MARKER" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
    echo "rgw.sh: ERROR: $DIR exists, is not empty and was not created by rgw.sh; refusing to wipe it" >&2
    exit 1
  fi
  rm -rf -- "$DIR"
  mkdir -p "$DIR"/{run,log,mon,osd/osd.0,rgw,crash}
  touch "$DIR/$MARKER"
}

write_conf() {
  local fsid=$1 mon_port=$2 rgw_port=$3
  cat >"$CONF" <<EOF
# Generated by scripts/rgw.sh: throwaway single-node Ceph for klstore tests.
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
# Loopback only: without these the OSD binds the host's first real interface.
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
# A taken port is fatal at once instead of 3 retries 5 s apart.
ms bind retry count = 1
ms bind retry delay = 1
# No cephx: nothing to leak, nothing to set up.
auth cluster required = none
auth service required = none
auth client required = none
keyring = /dev/null
# One OSD: replicas must be 1 and CRUSH must pick OSDs, not hosts.
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
# Few PGs per pool: radosgw creates ~7 pools; the default 32 PGs each is
# close to mon_max_pg_per_osd and costs CPU on a 2-core box.
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
# Everything stays inside DIR.
run dir = $DIR/run
crash dir = $DIR/crash
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.log
# Clients (ceph CLI, radosgw-admin) must give up instead of retrying for 300 s.
client mount timeout = 20
rados mon op timeout = 20
rados osd op timeout = 30

[mon]
# The mon binds its public addr, not "mon host": with just the global
# 127.0.0.1 it would take the default ports (3300, 6789) whatever "mon host"
# says, so a second instance in another DIR could never start.
public addr = v2:127.0.0.1:$mon_port
mon data = $DIR/mon/\$name
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
# Paxos batches proposals every 1 s by default; a fresh cluster (osd new, osd
# boot, rgw pool creation) needs a dozen map commits, so start-up would take
# ~13 s instead of ~2 s.
paxos propose interval = 0.05
paxos min wait = 0.01
# Do not refuse to start on a nearly full /tmp.
mon data avail crit = 0
mon data avail warn = 0

[osd]
osd data = $DIR/osd/\$name
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
# RAM-backed object store: fast, no disk setup, gone on stop. 4G of logical
# capacity so >100 MB benchmarks fit (RAM is only used for what is written).
osd objectstore = memstore
memstore device bytes = 4G

[client]
# One-shot clients (ceph CLI, radosgw-admin) get no admin socket: it would
# collide with the daemon's socket and is useless for them.
admin socket =

[client.rgw]
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
rgw data = $DIR/rgw
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
# radosgw hard-codes its own default ms_mon_client_mode = "secure" (other
# clients default to "secure crc"). msgr2 secure mode needs a cephx session
# key; with auth none the mon handshake fails with EACCES and radosgw retries
# silently until rgw_init_timeout (300 s). Allow crc, which auth none can do.
ms mon client mode = crc secure
rgw init timeout = 60
# A 2-core test box does not need 512 request threads.
rgw thread pool size = 64
# Ceph 16.2.15 deletes the keys of one multi-object DELETE concurrently, and
# can crash doing so (a segfault in RGWDeleteMultiObj::handle_individual_object
# seen here under concurrent writers; ceph PR 49327 added the concurrency):
# one key at a time.
rgw multi obj del max aio = 1
EOF
}

# run_step DESC LOGFILE CMD...: run a bounded one-shot command, fail clearly.
# Output goes to a file (never to our stdout: callers do `eval "$(rgw.sh start)"`,
# and a daemon inheriting that pipe would make them hang forever).
run_step() {
  local desc=$1 logf=$2; shift 2
  local t; t=$(time_left)
  [ "$t" -gt 0 ] || fail "start time limit (KL_RGW_TIMEOUT=${KL_RGW_TIMEOUT:-60} s) reached before: $desc"
  timeout -k 2 "$t" "$@" </dev/null >>"$logf" 2>&1 || fail "$desc failed (exit $?)" "$logf"
}

start_mon() {
  run_step "ceph-mon --mkfs" "$DIR/log/mon.a.out" ceph-mon -c "$CONF" -i a --mkfs
  # ceph-mon daemonizes only after its store is open, so a non-zero exit here
  # means it really failed (e.g. port already taken).
  run_step "starting ceph-mon" "$DIR/log/mon.a.out" ceph-mon -c "$CONF" -i a
  pid_of mon.a >/dev/null || fail "ceph-mon exited right after start" "$DIR/log/mon.a.out" "$DIR/log/mon.a.log"
}

start_osd() {
  local uuid; uuid=$(cat /proc/sys/kernel/random/uuid)
  # Register osd.0 in the osdmap (also a first round-trip proving the mon works).
  run_step "registering the OSD with the mon (ceph osd new)" "$DIR/log/osd.0.out" \
    ceph -c "$CONF" --connect-timeout "$(time_left)" osd new "$uuid" 0
  run_step "ceph-osd --mkfs" "$DIR/log/osd.0.out" ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid"
  run_step "starting ceph-osd" "$DIR/log/osd.0.out" ceph-osd -c "$CONF" -i 0
  pid_of osd.0 >/dev/null || fail "ceph-osd exited right after start" "$DIR/log/osd.0.out" "$DIR/log/osd.0.log"
}

# Start radosgw and wait until its S3 endpoint answers. radosgw creates its
# pools on first start, which needs the OSD up, so this is also the "cluster is
# usable" check.
start_rgw() {
  local port=$1 name
  run_step "starting radosgw" "$DIR/log/client.rgw.out" radosgw -c "$CONF" -n client.rgw
  while :; do
    if curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/"; then return 0; fi
    for name in mon.a osd.0 client.rgw; do
      # radosgw writes its pid file a moment after forking; give it that moment.
      if [ "$name" = client.rgw ] && [ ! -e "$DIR/run/$name.pid" ]; then continue; fi
      pid_of "$name" >/dev/null ||
        fail "$name died while waiting for radosgw to answer on 127.0.0.1:$port" \
          "$DIR/log/$name.out" "$DIR/log/$name.log"
    done
    [ "$(time_left)" -gt 0 ] ||
      fail "radosgw did not answer on http://127.0.0.1:$port/ within ${KL_RGW_TIMEOUT:-60} s" \
        "$DIR/log/client.rgw.log" "$DIR/log/osd.0.log"
    sleep 0.1
  done
}

create_user_and_bucket() {
  local port=$1 code
  run_step "radosgw-admin user create" "$DIR/log/radosgw-admin.out" \
    radosgw-admin -c "$CONF" user create --uid=klstore --display-name=klstore \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY"
  code=$(curl -s -m 10 -o "$DIR/log/create-bucket.out" -w '%{http_code}' \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" "${UNSIGNED[@]}" \
    -X PUT "http://127.0.0.1:$port/$BUCKET") || true
  [ "$code" = 200 ] ||
    fail "creating bucket $BUCKET returned HTTP ${code:-none}" "$DIR/log/create-bucket.out" "$DIR/log/client.rgw.log"
}

env_lines() {
  local port=$1
  cat <<EOF
export KL_S3_ENDPOINT=http://127.0.0.1:$port
export KL_S3_BUCKET=$BUCKET
export KL_S3_ACCESS_KEY=$ACCESS_KEY
export KL_S3_SECRET_KEY=$SECRET_KEY
export KL_S3_REGION=$REGION
EOF
}

# On any failure during start, tear down what was started (EXIT trap).
cleanup_failed_start() {
  local rc=$?
  trap - EXIT
  if [ "$rc" -ne 0 ]; then
    log "start failed; stopping what was started (logs kept in $DIR/log)"
    stop_all
  fi
  exit "$rc"
}

# --- commands ----------------------------------------------------------------

cmd_start() {
  local t0=$SECONDS mon_port rgw_port
  DEADLINE=$((SECONDS + ${KL_RGW_TIMEOUT:-60}))
  for tool in ceph-mon ceph-osd radosgw radosgw-admin ceph curl timeout; do
    command -v "$tool" >/dev/null || { log "ERROR: $tool not found (run scripts/install-deps.sh)"; exit 1; }
  done

  # Started twice / stale DIR: stop the previous instance before wiping.
  if [ -e "$DIR/$MARKER" ]; then stop_all; fi
  reset_dir
  trap cleanup_failed_start EXIT
  trap 'exit 130' INT TERM

  if [ -n "${KL_RGW_PORT:-}" ]; then
    rgw_port=$KL_RGW_PORT
    [[ "$rgw_port" =~ ^[0-9]+$ ]] || fail "KL_RGW_PORT=$rgw_port is not a port number"
    ! port_in_use "$rgw_port" || fail "KL_RGW_PORT=$rgw_port is already in use on 127.0.0.1"
  else
    rgw_port=$(pick_port 7480) || fail "no free TCP port found for radosgw"
  fi
  # The mon port is internal; 3300 is the msgr2 default, move if taken.
  mon_port=$(pick_port 3300) || fail "no free TCP port found for ceph-mon"
  [ "$mon_port" != "$rgw_port" ] || fail "port clash ($rgw_port)"

  write_conf "$(cat /proc/sys/kernel/random/uuid)" "$mon_port" "$rgw_port"
  start_mon
  start_osd
  start_rgw "$rgw_port"
  create_user_and_bucket "$rgw_port"

  env_lines "$rgw_port" >"$DIR/env.tmp"
  mv "$DIR/env.tmp" "$DIR/env"
  echo "$rgw_port" >"$DIR/port"
  trap - EXIT INT TERM
  log "radosgw ready on http://127.0.0.1:$rgw_port (bucket $BUCKET) in $((SECONDS - t0)) s; stop with: $0 stop $DIR"
  cat "$DIR/env"
}

cmd_stop() {
  stop_all
  # memstore keeps data in RAM; only the small mon store is on disk. Drop the
  # data dirs (and the env file, which no longer describes a live server) but
  # keep ceph.conf and logs for post-mortems.
  if [ -e "$DIR/$MARKER" ]; then
    rm -rf -- "$DIR/mon" "$DIR/osd" "$DIR/rgw" "$DIR/env" "$DIR/port"
  fi
  return 0
}

cmd_status() {
  local name port
  if [ ! -e "$DIR/$MARKER" ] || [ ! -r "$DIR/port" ]; then echo "not running ($DIR)"; return 1; fi
  for name in mon.a osd.0 client.rgw; do
    pid_of "$name" >/dev/null || { echo "not running: $name is down ($DIR)"; return 1; }
  done
  port=$(cat "$DIR/port")
  curl -s -m 5 -o /dev/null "http://127.0.0.1:$port/" || { echo "not answering on http://127.0.0.1:$port/"; return 1; }
  echo "running: http://127.0.0.1:$port ($DIR)"
}

main() {
  if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
  set_dir "${2:-}"
  case "$1" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) usage ;;
  esac
}

main "$@"
