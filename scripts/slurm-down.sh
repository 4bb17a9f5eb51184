#!/usr/bin/env bash
# Stop the cluster scripts/slurm-up.sh started: cancel its jobs, then stop slurmd, slurmctld and
# munged, only the processes recorded in $WINNOW_SLURM_ROOT/run/*.pid and only while each PID still
# belongs to a process of the expected name. Never kills by name. Safe to run again.
# Packages and slurm.conf stay (a later slurm-up takes under a second).
#   WINNOW_SLURM_PURGE=1  also delete $WINNOW_SLURM_ROOT (state and logs)
set -uo pipefail

ROOT=${WINNOW_SLURM_ROOT:-/var/lib/winnow-slurm}
RUN="$ROOT/run"
say() { echo "[slurm-down] $*" >&2; }

running() {  # a live process; daemons are reparented to PID 1, which reaps late, so a zombie is gone
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}
ours() {  # ours PIDFILE NAME -> prints the PID when it is alive and named NAME
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null | tr -dc '0-9')  # the daemon removes its file as it exits
  [ -n "$pid" ] && running "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
}
stop() {  # stop NAME PIDFILE
  local pid
  if pid=$(ours "$2" "$1"); then
    say "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then say "$1 still there after 10 s, SIGKILL"; kill -KILL "$pid" 2>/dev/null; fi
  fi
  rm -f "$2"
}

# 1. jobs first, so no job outlives slurmd
if ours "$RUN/slurmctld.pid" slurmctld >/dev/null; then
  jobs=$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    say "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 150); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi
# a finished job's slurmstepd lingers about a second after it leaves the queue: wait, never kill
stepds() { ps -eo stat=,comm= | awk '$1 !~ /^Z/ && $2 == "slurmstepd"' | wc -l; }
for _ in $(seq 75); do [ "$(stepds)" = 0 ] && break; sleep 0.2; done

# 2. daemons, in the reverse order of their start
stop slurmd "$RUN/slurmd.pid"
stop slurmctld "$RUN/slurmctld.pid"
stop munged "$RUN/munged.pid"

left=$(ps -eo pid=,stat=,comm= | awk '$2 !~ /^Z/ && $3 == "slurmstepd" {print $1}' | tr '\n' ' ')
[ -n "${left// /}" ] && say "warning: slurmstepd processes still running: $left"
if [ "${WINNOW_SLURM_PURGE:-0}" = 1 ]; then say "removing $ROOT"; rm -rf "$ROOT"; fi
say "cluster down"
exit 0
