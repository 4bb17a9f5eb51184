#!/usr/bin/env bash
# Start a local Ray head on this machine (for trying `executor.kind: ray` and for CI): `ray start --head` from the
# project's virtualenv, in a process session of its own, with its own temp folder and port, so that
# scripts/ray-down.sh stops exactly what this script started and never a Ray somebody else started.
#
# Idempotent: with our head up and answering it only says so; remains of ours that no longer answer are stopped
# first. Written to $WINNOW_RAY_ROOT:
#   ray_current_cluster  the head's address (written by `ray start`; winnow's `executor.ray_address: auto` reads it)
#   winnow-ray.sid       the session id shared by every process the head starts (daemons, workers, their children)
#   ray-up.log           the output of `ray start`
#
# Settings (environment, all optional):
#   WINNOW_RAY_ROOT             Ray's --temp-dir: sessions, logs, the files above (default /tmp/winnow-ray)
#   WINNOW_RAY_PORT             the head's port (default 6380: not Ray's 6379, which a Ray of your own may hold)
#   WINNOW_RAY_CPUS             CPUs the node offers (default: all of this machine's)
#   WINNOW_RAY_OBJECT_STORE_MB  Ray's shared-memory object store (default 512; datatrove passes small objects only)
#   WINNOW_RAY_WAIT_S           how long to wait for the head to answer (default 60)
#   VENV                        the virtualenv whose ray runs the head and its workers (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=${WINNOW_RAY_ROOT:-/tmp/winnow-ray}
PORT=${WINNOW_RAY_PORT:-6380}
STORE_MB=${WINNOW_RAY_OBJECT_STORE_MB:-512}
WAIT_S=${WINNOW_RAY_WAIT_S:-60}
VENV=${VENV:-.venv}
RAY="$(cd "$VENV" 2>/dev/null && pwd)/bin/ray"
SID_FILE="$ROOT/winnow-ray.sid"
ADDRESS_FILE="$ROOT/ray_current_cluster"

say() { echo "[ray-up] $*" >&2; }
die() { say "error: $*"; exit 1; }

[ -x "$RAY" ] || die "no ray in $VENV (make setup installs it; or: $VENV/bin/pip install -c constraints.txt -e '.[ray]')"
started_at=$(date +%s.%N)

# the live processes of our recorded session (a zombie counts as gone)
members() {
  local sid
  sid=$(tr -dc '0-9' 2>/dev/null <"$SID_FILE") || return 0
  [ -n "$sid" ] || return 0
  ps -eo pid=,sid=,stat= | awk -v s="$sid" '$2 == s && $3 !~ /^Z/ {print $1}'
}
listens() {  # listens HOST:PORT: something accepts a TCP connection there (quick; `ray status` waits ~40 s)
  local host=${1%:*} port=${1##*:}
  timeout 3 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
}
answers() {  # answers ADDRESS: the Ray head at ADDRESS reports its cluster status
  listens "$1" && timeout 30 "$RAY" status --address "$1" >/dev/null 2>&1
}

# 1. ours already up? ------------------------------------------------------------------------
if [ -n "$(members)" ]; then
  address=$(cat "$ADDRESS_FILE" 2>/dev/null || true)
  if [ -n "$address" ] && answers "$address"; then
    say "already up at $address (session $(cat "$SID_FILE"))"
    exit 0
  fi
  say "the head this script started earlier does not answer: stopping what is left of it"
  WINNOW_RAY_ROOT="$ROOT" bash scripts/ray-down.sh
fi

# 2. the port must be free: a Ray (or anything else) we did not start is left alone ------------
if listens "127.0.0.1:$PORT"; then
  die "port $PORT is in use by a process this script did not start (a Ray of your own? then use it: \
executor.ray_address: 127.0.0.1:$PORT); or choose another port: WINNOW_RAY_PORT=..."
fi

# 3. start the head in a session of its own ----------------------------------------------------
# setsid: every process the head starts, and everything they fork, shares one session id, which ray-down uses.
# `bash -c` records that id ($$: setsid makes it the session leader) and execs `ray start`, which starts the
# daemons and exits; --wait returns its exit status. Started from $ROOT: Ray's workers start in the head's folder.
mkdir -p "$ROOT"
rm -f "$ADDRESS_FILE" "$SID_FILE"
args=(start --head --port="$PORT" --temp-dir="$ROOT" --object-store-memory=$((STORE_MB * 1024 * 1024))
      --disable-usage-stats --include-dashboard=false
      # every other port picked free, so the head starts beside a Ray of your own
      --dashboard-port=0 --dashboard-agent-listen-port=0 --dashboard-agent-grpc-port=0
      --metrics-export-port=0 --runtime-env-agent-port=0)
[ -n "${WINNOW_RAY_CPUS:-}" ] && args+=(--num-cpus="$WINNOW_RAY_CPUS")
say "starting a Ray head on port $PORT ($ROOT)"
if ! (cd "$ROOT" && RAY_ADDRESS='' setsid --wait bash -c 'echo $$ > "$0"; exec "$@"' "$SID_FILE" "$RAY" "${args[@]}" \
        >"$ROOT/ray-up.log" 2>&1 </dev/null); then
  tail -5 "$ROOT/ray-up.log" >&2
  WINNOW_RAY_ROOT="$ROOT" bash scripts/ray-down.sh
  die "ray start failed (see $ROOT/ray-up.log)"
fi

# 4. wait until it answers ---------------------------------------------------------------------
address=""
for _ in $(seq "$WAIT_S"); do
  address=$(cat "$ADDRESS_FILE" 2>/dev/null || true)
  [ -n "$address" ] && answers "$address" && break
  address=""
  sleep 1
done
[ -n "$address" ] || die "the head does not answer (see $ROOT/ray-up.log and $ROOT/session_latest/logs/)"
say "Ray head up at $address, session $(cat "$SID_FILE") \
($(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $started_at}") s); stop it with: make ray-down"
