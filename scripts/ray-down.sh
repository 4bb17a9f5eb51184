#!/usr/bin/env bash
# Stop the Ray head scripts/ray-up.sh started: every live process of the session recorded in
# $WINNOW_RAY_ROOT/winnow-ray.sid (the head's daemons, its workers and whatever they forked), SIGTERM first, SIGKILL
# after a grace period. Never by name and never `ray stop`, which stops every Ray of the user: a Ray started by
# anyone else lives in another session and is left alone. Safe to run again.
#
# Why a session id is safe to act on: Linux does not hand out a number still in use as a session id, so while any
# process of our session lives, that id is ours. Our session's leader (`ray start`) exits once the head is up; a live
# process with that very pid means the number was reused after our session ended, and nothing is killed.
#
# Logs stay in $WINNOW_RAY_ROOT (session_*/logs/); WINNOW_RAY_PURGE=1 deletes the folder.
#   WINNOW_RAY_GRACE_S  seconds between SIGTERM and SIGKILL (default 5; Ray's monitor ignores SIGTERM)
set -uo pipefail

ROOT=${WINNOW_RAY_ROOT:-/tmp/winnow-ray}
GRACE_S=${WINNOW_RAY_GRACE_S:-5}
SID_FILE="$ROOT/winnow-ray.sid"
say() { echo "[ray-down] $*" >&2; }

sid=$(tr -dc '0-9' 2>/dev/null <"$SID_FILE")
if [ -z "$sid" ]; then
  say "no head started by ray-up is recorded in $ROOT: nothing to stop"
  exit 0
fi
members() { ps -eo pid=,sid=,stat= | awk -v s="$sid" '$2 == s && $3 !~ /^Z/ {print $1}' | tr '\n' ' '; }

if kill -0 "$sid" 2>/dev/null; then
  say "pid $sid lives again as another process: session $sid is not the head's any more; nothing stopped"
  pids=""
else
  pids=$(members)
fi
if [ -n "${pids// /}" ]; then
  say "stopping session $sid: $(echo "$pids" | wc -w) processes"
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null
  for _ in $(seq $((GRACE_S * 10))); do [ -z "$(members)" ] && break; sleep 0.1; done
  left=$(members)
  if [ -n "${left// /}" ]; then
    say "SIGKILL for those still there after ${GRACE_S} s: $left"
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null
    for _ in $(seq 50); do [ -z "$(members)" ] && break; sleep 0.1; done
  fi
fi

left=$(members)
if [ -n "${left// /}" ]; then
  say "error: still running in session $sid: $left"
  exit 1
fi
rm -f "$SID_FILE" "$ROOT/ray_current_cluster"  # winnow's `ray_address: auto` no longer points at it
if [ "${WINNOW_RAY_PURGE:-0}" = 1 ]; then say "removing $ROOT"; rm -rf "$ROOT"; fi
say "Ray head down"
exit 0
