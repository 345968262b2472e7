#!/usr/bin/env bash
# radosgw.sh - a throwaway single-node Ceph radosgw (S3-compatible server) on
# 127.0.0.1, used by the S3 conformance tests of the object-store layer, both
# locally and in CI.
#
# Usage (Linux, as root or via sudo for `install`; no systemd or docker needed):
#   radosgw.sh install   install radosgw/ceph-mon/ceph-osd with apt-get, only if missing
#   radosgw.sh up        start mon + osd + radosgw, create the test user (idempotent)
#   radosgw.sh down      stop everything and delete the state dir (idempotent)
#   radosgw.sh status    print the endpoint and exit 0 if up, else exit 1
#
# Typical loop (from the repository root):
#   npm run s3:up     # or: bash packages/core/scripts/radosgw.sh up
#   npm test          # S3 conformance tests pick the server up via the files below
#   npm run s3:down
#
# Environment:
#   OPENDATA_S3_PORT      S3 port on 127.0.0.1 (default 7480)
#   OPENDATA_S3_DIR       state dir: config, data, logs, PIDs
#                         (default ${TMPDIR:-/tmp}/opendata-radosgw; wiped by `up` and `down`)
#   OPENDATA_S3_MON_PORT  port of the private Ceph monitor (default 6789)
#
# After `up`, $OPENDATA_S3_DIR/s3.json holds the connection settings as one JSON
# object ({"endpoint","region","accessKeyId","secretAccessKey"}) and
# $OPENDATA_S3_DIR/env the same as shell exports (`. "$OPENDATA_S3_DIR/env"`).
# Credentials are fixed test values: opendata-test / opendata-test-secret,
# region us-east-1. Buckets are addressed path-style.
#
# The cluster is one monitor, one OSD on memstore (data lives in RAM, 1 GiB,
# lost on `down`), no mgr (health shows warnings; harmless), no cephx auth.
# Everything (config, data, logs, admin sockets) stays inside the state dir;
# /etc/ceph and /var/lib/ceph are not touched.

set -euo pipefail

PORT="${OPENDATA_S3_PORT:-7480}"
MON_PORT="${OPENDATA_S3_MON_PORT:-6789}"
DIR="${OPENDATA_S3_DIR:-${TMPDIR:-/tmp}/opendata-radosgw}"
REGION="us-east-1"
ACCESS_KEY="opendata-test"
SECRET_KEY="opendata-test-secret"
UP_TIMEOUT=90 # seconds for the whole bring-up

PACKAGES=(radosgw ceph-mon ceph-osd)
BINARIES=(ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool)
DAEMONS=(rgw osd mon) # stop order; started in reverse
MARKER=".opendata-radosgw"

log() { printf 'radosgw: %s\n' "$*"; }
warn() { printf 'radosgw: %s\n' "$*" >&2; }
die() {
	printf 'radosgw: error: %s\n' "$*" >&2
	exit 1
}

[[ "$PORT" =~ ^[0-9]+$ ]] || die "OPENDATA_S3_PORT must be a port number, got '$PORT'"
[[ "$MON_PORT" =~ ^[0-9]+$ ]] || die "OPENDATA_S3_MON_PORT must be a port number, got '$MON_PORT'"
[[ -n "$DIR" && "$DIR" != *[[:space:]]* ]] || die "OPENDATA_S3_DIR must be a path without whitespace, got '$DIR'"
DIR="$(realpath -m -- "$DIR")"
[[ "$DIR" != "/" ]] || die "refusing to use / as OPENDATA_S3_DIR"

CONF="$DIR/ceph.conf"
ENDPOINT="http://127.0.0.1:$PORT"
unset CEPH_ARGS
export CEPH_CONF="$CONF"

now_ms() {
	if [[ -n "${EPOCHREALTIME:-}" ]]; then
		local t="${EPOCHREALTIME//[!0-9]/}" # microseconds, locale-proof
		echo "$((10#$t / 1000))"
	else
		echo "$(($(date +%s%N) / 1000000))"
	fi
}

# --- process helpers ---------------------------------------------------------

# True if $1 is a live (non-zombie) process started with our ceph.conf, so a
# recycled PID never gets signalled.
is_ours() {
	local pid="$1" stat state cmd
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
	state="${stat##*) }"
	state="${state%% *}"
	[[ -n "$state" && "$state" != Z && "$state" != X ]] || return 1
	cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
	[[ "$cmd" == *"$CONF"* ]]
}

pid_of() {
	local f="$DIR/run/$1.pid"
	cat "$f" 2>/dev/null || true
}

daemon_alive() { is_ours "$(pid_of "$1")"; }

# Any other process still using our config (e.g. a daemon whose PID file was lost).
stray_pids() {
	local p cmd
	for p in /proc/[0-9]*; do
		p="${p#/proc/}"
		[[ "$p" == "$$" || "$p" == "$BASHPID" ]] && continue
		cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")" || continue
		[[ "$cmd" == *"$CONF"* ]] && is_ours "$p" && echo "$p"
	done
	return 0
}

# stop_pid LABEL PID: SIGTERM (repeated once, the OSD sometimes ignores the
# first), then SIGKILL after a timeout; returns once the process is gone.
stop_pid() {
	local label="$1" pid="$2" i
	is_ours "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do # 20 s
		is_ours "$pid" || return 0
		if ((i == 25)); then kill -TERM "$pid" 2>/dev/null || true; fi
		sleep 0.2
	done
	warn "$label (pid $pid) ignored SIGTERM, sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		is_ours "$pid" || return 0
		sleep 0.2
	done
	warn "$label (pid $pid) is still alive after SIGKILL"
	return 1
}

# Stops every daemon of this state dir; prints what it stopped. Returns 0 if
# anything had been running, 1 if nothing was.
stop_all() {
	local name pid any=1 ok=0
	[[ -d "$DIR/run" ]] || return 1
	for name in "${DAEMONS[@]}"; do
		pid="$(pid_of "$name")"
		if is_ours "$pid"; then
			any=0
			log "stopping $name (pid $pid)"
			stop_pid "$name" "$pid" || ok=1
		fi
		rm -f "$DIR/run/$name.pid"
	done
	for pid in $(stray_pids); do
		any=0
		log "stopping leftover process $pid"
		stop_pid "process" "$pid" || ok=1
	done
	((ok == 0)) || die "could not stop all processes of $DIR"
	return "$any"
}

# --- state dir -----------------------------------------------------------------

# Deletes the state dir, but only if it is one of ours (or empty).
wipe_dir() {
	[[ -e "$DIR" ]] || return 0
	[[ -d "$DIR" ]] || die "$DIR exists and is not a directory"
	if [[ ! -e "$DIR/$MARKER" && -n "$(ls -A "$DIR")" ]]; then
		die "$DIR is not empty and was not created by this script; refusing to delete it (set OPENDATA_S3_DIR)"
	fi
	rm -rf -- "$DIR"
}

http_code() {
	curl -s -o /dev/null -w '%{http_code}' --connect-timeout 2 --max-time 5 "$1" 2>/dev/null || true
}

answers_http() { [[ "$(http_code "$1")" =~ ^[24][0-9][0-9]$ ]]; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running_port() { cat "$DIR/port" 2>/dev/null || true; }

# Up = all three daemons alive and the S3 endpoint answers.
is_up() {
	local name p
	for name in "${DAEMONS[@]}"; do daemon_alive "$name" || return 1; done
	p="$(running_port)"
	[[ -n "$p" ]] && answers_http "http://127.0.0.1:$p/"
}

dump_logs() {
	local f
	[[ -d "$DIR/log" ]] || return 0
	for f in "$DIR"/log/*; do
		[[ -s "$f" ]] || continue # skip missing/empty
		printf '\nradosgw: ---- last 40 lines of %s ----\n' "$f" >&2
		tail -n 40 "$f" >&2 || true
	done
	printf '\n' >&2
}

# --- commands -------------------------------------------------------------------

have_binaries() {
	local b
	for b in "${BINARIES[@]}" curl; do command -v "$b" >/dev/null 2>&1 || return 1; done
}

cmd_install() {
	if have_binaries; then
		log "ceph binaries already installed ($(ceph --version 2>/dev/null | awk '{print $3}'))"
		return 0
	fi
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install ${PACKAGES[*]} with your package manager"
	local sudo=() pkgs=("${PACKAGES[@]}")
	command -v curl >/dev/null 2>&1 || pkgs+=(curl)
	if [[ "$(id -u)" != 0 ]]; then
		command -v sudo >/dev/null 2>&1 || die "installing packages needs root"
		sudo=(sudo)
	fi
	log "installing ${pkgs[*]} with apt-get"
	"${sudo[@]}" apt-get update
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"
	have_binaries || die "packages installed but some binaries are still missing (${BINARIES[*]})"
	log "installed"
}

UP_STARTED=0
DEADLINE=0

on_exit() {
	local rc=$?
	if ((UP_STARTED == 1 && rc != 0)); then
		warn "bring-up failed (exit $rc); logs follow"
		dump_logs
		trap - EXIT
		stop_all >/dev/null 2>&1 || true
		warn "daemons stopped; state kept in $DIR for inspection (removed by the next up/down)"
	fi
	exit "$rc"
}

remaining() { echo $((DEADLINE - SECONDS)); }

# Timeout for one blocking call: whatever is left of the deadline, at most 20 s.
step_timeout() {
	local r
	r="$(remaining)"
	((r > 20)) && r=20
	((r < 1)) && die "bring-up did not finish within ${UP_TIMEOUT}s"
	echo "$r"
}

ceph_cmd() {
	local t
	t="$(step_timeout)"
	timeout "$t" ceph -c "$CONF" --connect-timeout "$t" "$@"
}

start_daemon() { # start_daemon NAME COMMAND...
	local name="$1"
	shift
	setsid "$@" -f -c "$CONF" </dev/null >"$DIR/log/$name.stdout" 2>&1 &
	echo "$!" >"$DIR/run/$name.pid"
}

# wait_until DESCRIPTION CHECK...: polls CHECK until it succeeds, failing
# early if a started daemon died or the deadline passed.
wait_until() {
	local desc="$1" name
	shift
	while ! "$@" >/dev/null 2>&1; do
		for name in "${DAEMONS[@]}"; do
			if [[ -f "$DIR/run/$name.pid" ]] && ! daemon_alive "$name"; then
				die "$name exited while waiting for $desc"
			fi
		done
		(($(remaining) > 0)) || die "timed out after ${UP_TIMEOUT}s waiting for $desc"
		sleep 0.5
	done
}

osd_up_and_in() {
	local s
	s="$(ceph_cmd osd stat -f json)" || return 1
	[[ "$s" == *'"num_up_osds":1'* && "$s" == *'"num_in_osds":1'* ]]
}

endpoint_answers() { answers_http "$ENDPOINT/"; }

# A SigV4-signed ListBuckets with the test credentials returns 200.
creds_work() {
	local empty_sha=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
	[[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
		--aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
		-H "x-amz-content-sha256: $empty_sha" "$ENDPOINT/" 2>/dev/null)" == 200 ]]
}

write_conf() {
	local fsid="$1"
	cat >"$CONF" <<EOF
# Generated by radosgw.sh; private single-node test cluster.
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
ms bind msgr2 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.log
crash dir = $DIR/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
# Batch map updates for 0.1 s instead of 1 s: pool creation (done by radosgw
# on start and on the first bucket/object) gets several times faster.
paxos propose interval = 0.1

[mon]
mon data = $DIR/mon/\$id

[osd]
osd data = $DIR/osd/\$id
osd objectstore = memstore
memstore device bytes = 1073741824
osd crush update on start = false
# Skip the device-class update at boot: it races with the map epoch on a fresh cluster
# and fails the start with "wrong fsid" now and then.
osd class update on start = false

[client.rgw.a]
rgw data = $DIR/rgw
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
EOF
}

write_outputs() {
	local tmp
	tmp="$(mktemp "$DIR/.s3.json.XXXXXX")"
	printf '{"endpoint":"%s","region":"%s","accessKeyId":"%s","secretAccessKey":"%s"}\n' \
		"$ENDPOINT" "$REGION" "$ACCESS_KEY" "$SECRET_KEY" >"$tmp"
	mv -f "$tmp" "$DIR/s3.json"
	tmp="$(mktemp "$DIR/.env.XXXXXX")"
	{
		printf 'export OPENDATA_S3_ENDPOINT=%s\n' "$ENDPOINT"
		printf 'export OPENDATA_S3_REGION=%s\n' "$REGION"
		printf 'export OPENDATA_S3_ACCESS_KEY_ID=%s\n' "$ACCESS_KEY"
		printf 'export OPENDATA_S3_SECRET_ACCESS_KEY=%s\n' "$SECRET_KEY"
	} >"$tmp"
	mv -f "$tmp" "$DIR/env"
}

cmd_up() {
	if is_up; then
		local p
		p="$(running_port)"
		[[ "$p" == "$PORT" ]] || die "already running on port $p (state dir $DIR); run 'radosgw.sh down' first"
		log "already running at $ENDPOINT (state dir $DIR)"
		return 0
	fi
	have_binaries || die "ceph binaries missing (${BINARIES[*]}, curl); run 'radosgw.sh install' first"

	# Leftovers of a previous, half-dead instance in this state dir.
	if stop_all; then log "stopped leftovers of a previous run"; fi
	wipe_dir

	port_busy "$PORT" && die "port $PORT is already in use on 127.0.0.1 (set OPENDATA_S3_PORT)"
	port_busy "$MON_PORT" && die "port $MON_PORT is already in use on 127.0.0.1 (another Ceph monitor? set OPENDATA_S3_MON_PORT)"

	local t0 fsid osd_uuid osd_id
	t0="$(now_ms)"
	DEADLINE=$((SECONDS + UP_TIMEOUT))
	UP_STARTED=1
	trap on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	mkdir -p "$DIR"/{mon,osd,rgw,run,log,crash}
	touch "$DIR/$MARKER"
	echo "$PORT" >"$DIR/port"
	fsid="$(cat /proc/sys/kernel/random/uuid)"
	write_conf "$fsid"

	log "starting monitor on 127.0.0.1:$MON_PORT"
	monmaptool --create --addv a "[v1:127.0.0.1:$MON_PORT]" --fsid "$fsid" "$DIR/monmap" >"$DIR/log/monmaptool.stdout" 2>&1 ||
		die "monmaptool failed: $(cat "$DIR/log/monmaptool.stdout")"
	ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" >"$DIR/log/mon-mkfs.stdout" 2>&1 ||
		die "ceph-mon --mkfs failed"
	start_daemon mon ceph-mon -i a
	wait_until "the monitor" ceph_cmd mon stat

	log "starting osd (memstore, 1 GiB)"
	osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
	osd_id="$(ceph_cmd osd new "$osd_uuid")" || die "'ceph osd new' failed"
	[[ "$osd_id" =~ ^[0-9]+$ ]] || die "'ceph osd new' returned '$osd_id'"
	mkdir -p "$DIR/osd/$osd_id"
	ceph-osd -c "$CONF" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >"$DIR/log/osd-mkfs.stdout" 2>&1 ||
		die "ceph-osd --mkfs failed"
	ceph_cmd osd crush add "osd.$osd_id" 1.0 host=localhost root=default >/dev/null 2>&1 ||
		die "'ceph osd crush add' failed"
	start_daemon osd ceph-osd -i "$osd_id"
	wait_until "osd.$osd_id to be up and in" osd_up_and_in

	log "starting radosgw on $ENDPOINT"
	start_daemon rgw radosgw -n client.rgw.a
	wait_until "radosgw to answer on $ENDPOINT" endpoint_answers

	log "creating S3 user $ACCESS_KEY"
	timeout "$(step_timeout)" radosgw-admin -c "$CONF" user create --uid "$ACCESS_KEY" \
		--display-name "opendata test" --access-key "$ACCESS_KEY" --secret "$SECRET_KEY" \
		>"$DIR/log/user-create.stdout" 2>&1 || die "radosgw-admin user create failed: $(tail -n 5 "$DIR/log/user-create.stdout")"
	if curl --help all 2>/dev/null | grep -q -- --aws-sigv4; then
		wait_until "the test credentials to be accepted" creds_work
	fi

	write_outputs
	UP_STARTED=0
	trap - EXIT INT TERM
	local ms=$(($(now_ms) - t0))
	log "up in $((ms / 1000)).$(printf '%03d' $((ms % 1000)) | cut -c1)s at $ENDPOINT (region $REGION, key $ACCESS_KEY)"
	log "connection settings: $DIR/s3.json, $DIR/env"
}

cmd_down() {
	if stop_all; then
		log "stopped"
	else
		log "not running"
	fi
	if [[ -e "$DIR" ]]; then
		if [[ -e "$DIR/$MARKER" || -z "$(ls -A "$DIR" 2>/dev/null)" ]]; then
			rm -rf -- "$DIR"
			log "removed $DIR"
		else
			warn "$DIR was not created by this script; leaving it alone"
		fi
	fi
}

cmd_status() {
	if is_up; then
		echo "http://127.0.0.1:$(running_port)"
		return 0
	fi
	log "not running (state dir $DIR)" >&2
	return 1
}

case "${1:-}" in
install) cmd_install ;;
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*)
	echo "usage: $(basename "$0") install|up|down|status" >&2
	exit 2
	;;
esac
