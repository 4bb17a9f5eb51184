#!/usr/bin/env bash
# Bring up a real single-node Slurm cluster on this machine (for trying `executor.kind: slurm` and for CI):
# install the Debian packages if missing, write a managed slurm.conf for this node, start
# munged -> slurmctld -> slurmd without systemd, and wait until the node takes jobs.
#
# Idempotent: with the cluster up it only checks it; a daemon that died is started again.
# Every daemon started here gets a PID file in $WINNOW_SLURM_ROOT/run/; scripts/slurm-down.sh
# stops exactly those processes and nothing else.
#
# Settings (environment, all optional):
#   WINNOW_SLURM_ROOT       state, logs and PID files      (default /var/lib/winnow-slurm)
#   WINNOW_SLURM_PARTITION  the partition's name           (default debug)
#   WINNOW_SLURM_MEM_MB     memory the node advertises, MB (default 95% of what slurmd -C detects)
#   WINNOW_SLURM_FORCE_CONF 1 = replace an /etc/slurm/slurm.conf this script did not write
#   WINNOW_SLURM_WAIT_S     how long to wait for the node  (default 60)
set -euo pipefail

ROOT=${WINNOW_SLURM_ROOT:-/var/lib/winnow-slurm}
PARTITION=${WINNOW_SLURM_PARTITION:-debug}
WAIT_S=${WINNOW_SLURM_WAIT_S:-60}
CONF=/etc/slurm/slurm.conf   # the compiled-in path: sbatch, srun and the jobs find it without SLURM_CONF
MARKER="# managed-by: winnow scripts/slurm-up.sh"
RUN="$ROOT/run"

say() { echo "[slurm-up] $*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts system daemons)"
started_at=$(date +%s.%N)

# 1. packages -------------------------------------------------------------------------------
missing=0
for tool in slurmctld slurmd sbatch srun sinfo scontrol squeue scancel munged munge; do
  command -v "$tool" >/dev/null 2>&1 || missing=1
done
if [ "$missing" = 1 ]; then
  say "installing slurmctld slurmd slurm-client munge"
  # without systemd the maintainer scripts would try to start the daemons through /etc/init.d:
  # a policy-rc.d that answers 101 ("not allowed") keeps them from doing so during the install.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# is_ours PIDFILE NAME: the PID in PIDFILE is a live process (a zombie counts as gone) named NAME.
# Checking the name guards against a recycled PID after a reboot or a killed sandbox.
is_ours() {
  local pid state
  [ -s "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null | tr -dc '0-9')  # the daemon removes its file as it exits
  [ -n "$pid" ] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}
stop_ours() {  # stop_ours NAME PIDFILE
  is_ours "$2" "$1" || { rm -f "$2"; return 0; }
  local pid; pid=$(cat "$2" 2>/dev/null | tr -dc '0-9')
  say "stopping $1 (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 100); do is_ours "$2" "$1" || break; sleep 0.1; done
  is_ours "$2" "$1" && kill -KILL "$pid"
  rm -f "$2"
}

# 2. munge ----------------------------------------------------------------------------------
mkdir -p "$RUN" "$ROOT/log" "$ROOT/state" "$ROOT/spool"
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  say "creating the munge key"
  mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key

munge_answers() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if is_ours "$RUN/munged.pid" munged && munge_answers; then
  :
elif munge_answers; then
  say "reusing a munged this script did not start (it will not be stopped by slurm-down)"
  rm -f "$RUN/munged.pid"
else
  say "starting munged"
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  for _ in $(seq 50); do munge_answers && [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  munge_answers || die "munged did not start (see /var/log/munge/munged.log)"
  cp /run/munge/munged.pid "$RUN/munged.pid"
fi

# 3. slurm.conf -----------------------------------------------------------------------------
HOST=$(hostname -s)
HW=$(slurmd -C | head -1)  # e.g. NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
hw() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$HW"; }
MEM=${WINNOW_SLURM_MEM_MB:-$(( $(hw RealMemory) * 95 / 100 ))}
NODE="CPUs=$(hw CPUs) Sockets=$(hw SocketsPerBoard) CoresPerSocket=$(hw CoresPerSocket) ThreadsPerCore=$(hw ThreadsPerCore) RealMemory=$MEM"

NEW_CONF=$(cat <<CONF
$MARKER
# A single-node cluster on 127.0.0.1: no accounting (no sacct), no cgroups.
ClusterName=winnow
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$ROOT/state
SlurmdSpoolDir=$ROOT/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
SchedulerType=sched/backfill
# schedule right after a submission or a completion: the defaults add 2-3 s per dependency hop
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
# a job whose afterok dependency failed is cancelled instead of pending forever
# (Slurm >= 21.08 reads this from DependencyParameters; under SchedulerParameters it is ignored)
DependencyParameters=kill_invalid_depend
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default, a job that asks no memory reserves the whole node and jobs run one at a time
DefMemPerCPU=1024
ReturnToService=2
KillWait=5
InactiveLimit=0
NodeName=$HOST NodeAddr=127.0.0.1 NodeHostname=$HOST $NODE State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
# a second partition with a 5-minute limit, so that a too-long executor.time meets a real refusal
PartitionName=short Nodes=$HOST MaxTime=00:05:00 State=UP
CONF
)

mkdir -p /etc/slurm
# ours, or the one written by the reference script this one grew from (../shared/reference/slurm/slurm-local-up.sh)
if [ -e "$CONF" ] && ! grep -qE "^# managed-by: (winnow scripts/slurm-up.sh|slurm-local-up.sh)$" "$CONF" \
   && [ "${WINNOW_SLURM_FORCE_CONF:-0}" != 1 ]; then
  die "$CONF exists and was not written by this script (WINNOW_SLURM_FORCE_CONF=1 replaces it)"
fi
if [ ! -e "$CONF" ] || [ "$(cat "$CONF")" != "$NEW_CONF" ]; then
  printf '%s\n' "$NEW_CONF" > "$CONF"
  say "wrote $CONF (node $HOST: $NODE, partition $PARTITION)"
  # node changes need a restart; `scontrol reconfigure` refuses them
  stop_ours slurmd "$RUN/slurmd.pid"
  stop_ours slurmctld "$RUN/slurmctld.pid"
fi

# 4. slurmctld, then slurmd (both daemonize and write their PID files) ----------------------
controller_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
if ! is_ours "$RUN/slurmctld.pid" slurmctld; then
  controller_up && die "a slurmctld this script did not start answers here; not starting a second one"
  say "starting slurmctld"
  rm -f "$RUN/slurmctld.pid"
  slurmctld -c   # -c: clean state, so no job from an earlier life of the cluster comes back
fi
for _ in $(seq 100); do controller_up && break; sleep 0.1; done
controller_up || die "slurmctld does not answer (see $ROOT/log/slurmctld.log)"

if ! is_ours "$RUN/slurmd.pid" slurmd; then
  say "starting slurmd"
  rm -f "$RUN/slurmd.pid"
  slurmd
fi

# 5. wait for the node ----------------------------------------------------------------------
state=""
for _ in $(seq $(( WAIT_S * 5 ))); do
  state=$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -1 || true)
  case "$state" in
    idle|mixed|allocated|completing) break ;;
    down*|drain*|fail*) scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 0.2
done
case "$state" in
  idle|mixed|allocated|completing) ;;
  *) sinfo -R >&2 || true; die "node $HOST is '$state', not usable (see $ROOT/log/slurmd.log)" ;;
esac
say "cluster up: node $HOST is $state, partition $PARTITION ($(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $started_at}") s)"
