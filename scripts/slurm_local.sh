#!/usr/bin/env bash
# A single-node Slurm cluster with everything (config, state, logs, munge key and socket) under DIR.
#
#   scripts/slurm_local.sh start DIR    # prints `export SLURM_CONF=DIR/etc/slurm.conf`
#   scripts/slurm_local.sh status DIR
#   scripts/slurm_local.sh stop DIR     # cancels its jobs, stops its daemons (only those started under DIR)
#
# For trying `run_benchmark.py slurm --submit` on a workstation and for tests/slurm. Runs as root
# (slurmd starts jobs as their user). Missing Debian packages (slurmctld slurmd slurm-client munge)
# are installed with apt-get when run as root. Ports: SLURM_LOCAL_CTLD_PORT and SLURM_LOCAL_D_PORT
# (default 6817 and 6818). Exit status 3 means "cannot run here" (not root, no Slurm and no apt-get).
set -euo pipefail

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
action=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
conf=$dir/etc/slurm.conf
node=$(hostname -s)
ctld_port=${SLURM_LOCAL_CTLD_PORT:-6817}
d_port=${SLURM_LOCAL_D_PORT:-6818}
export SLURM_CONF=$conf

log() { echo "slurm_local: $*" >&2; }

have_binaries() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null
}

install_packages() {
  if have_binaries; then return 0; fi
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    log "Slurm is not installed and cannot be installed here (needs root and apt-get)"; exit 3
  fi
  log "installing slurmctld slurmd slurm-client munge with apt-get"
  # The packages' maintainer scripts must not start system-wide daemons: deny them for the install.
  local policy=/usr/sbin/policy-rc.d added=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
  fi
  local packages=(slurmctld slurmd slurm-client munge) status=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null; } || status=$?
  [[ -n $added ]] && rm -f "$policy"
  [[ $status -eq 0 ]] || { log "apt-get install failed"; exit 3; }
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_config() {
  local cpus mem_kb mem_mb
  cpus=$(nproc)
  mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
  mem_mb=$(( mem_kb / 1024 - 1024 ))  # leave 1 GiB to the system
  (( mem_mb > 256 )) || mem_mb=256
  mkdir -p "$dir/etc" "$dir/log" "$dir/run" "$dir/state/ctld" "$dir/state/d"
  cat >"$conf" <<CONF
# Written by scripts/slurm_local.sh: one node, everything under $dir
ClusterName=local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/run/munge.socket.2
StateSaveLocation=$dir/state/ctld
SlurmdSpoolDir=$dir/state/d
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,bf_interval=1
SlurmdParameters=config_overrides
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=5
MinJobAge=600
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
  local m=$dir/munge
  if pid_alive "$m/run/munged.pid"; then return 0; fi
  mkdir -p "$m/etc" "$m/lib" "$m/log" "$m/run"
  chmod 755 "$dir"
  if ! runuser -u munge -- test -x "$dir"; then
    log "the munge user cannot reach $dir (a parent folder is private); use a folder like /tmp/slurm-local"; exit 3
  fi
  [[ -s $m/etc/munge.key ]] || dd if=/dev/urandom of="$m/etc/munge.key" bs=1024 count=1 status=none
  chown -R munge:munge "$m"
  chmod 700 "$m/etc" "$m/lib" "$m/log"
  chmod 755 "$m" "$m/run"   # clients must reach the socket
  chmod 400 "$m/etc/munge.key"
  runuser -u munge -- munged --force --key-file="$m/etc/munge.key" --socket="$m/run/munge.socket.2" \
    --pid-file="$m/run/munged.pid" --log-file="$m/log/munged.log" --seed-file="$m/lib/munged.seed"
}

wait_idle() {
  local state=""
  for _ in $(seq 1 120); do
    state=$(sinfo -h -N -n "$node" -o %t 2>/dev/null | head -n1 || true)
    case $state in
      idle|mix|alloc) return 0 ;;
      down*|drain*) scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  log "node $node did not become idle (state '${state:-none}'); see $dir/log/"; exit 1
}

start() {
  [[ $(id -u) -eq 0 ]] || { log "must run as root (slurmd starts jobs as their user)"; exit 3; }
  install_packages
  if pid_alive "$dir/run/slurmctld.pid" && pid_alive "$dir/run/slurmd.pid"; then
    log "already running under $dir"
  else
    write_config
    start_munge
    slurmctld -f "$conf"   # daemonizes; the pid file is written under $dir/run
    slurmd -f "$conf" -N "$node"
  fi
  wait_idle
  echo "export SLURM_CONF=$conf"
}

# Job processes this cluster left behind: slurmstepd and job processes (they carry SLURM_JOB_ID) whose
# environment names this SLURM_CONF. Matching on the environment never touches another cluster's jobs.
job_processes() {
  local p ancestors=" " pid=$$
  while [[ $pid -gt 1 ]]; do  # never this script or whoever called it
    ancestors+="$pid "
    pid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null || echo 1)
  done
  for p in /proc/[0-9]*; do
    [[ $ancestors == *" ${p#/proc/} "* ]] && continue
    grep -qzx "SLURM_CONF=$conf" "$p/environ" 2>/dev/null || continue
    if grep -qz "^SLURM_JOB_ID=" "$p/environ" 2>/dev/null || [[ $(cat "$p/comm" 2>/dev/null) == slurmstepd ]]; then
      echo "${p#/proc/}"
    fi
  done
  return 0
}

stop_pid_file() {
  local file=$1 pid
  pid_alive "$file" || return 0
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}

stop() {
  if pid_alive "$dir/run/slurmctld.pid"; then
    scancel --full --quiet --partition=debug 2>/dev/null || true
    for _ in $(seq 1 25); do [[ -z $(squeue -h 2>/dev/null) ]] && break; sleep 0.2; done
  fi
  stop_pid_file "$dir/run/slurmd.pid"
  stop_pid_file "$dir/run/slurmctld.pid"
  local leftovers
  leftovers=$(job_processes)
  [[ -n $leftovers ]] && kill -9 $leftovers 2>/dev/null || true
  stop_pid_file "$dir/munge/run/munged.pid"
  log "stopped the cluster under $dir"
}

status() {
  local name file up=0
  for name in munged slurmctld slurmd; do
    file=$dir/run/$name.pid
    [[ $name == munged ]] && file=$dir/munge/run/munged.pid
    if pid_alive "$file"; then echo "$name: running (pid $(cat "$file"))"; up=$((up + 1)); else echo "$name: stopped"; fi
  done
  if (( up == 3 )); then sinfo; squeue; fi
  (( up == 3 ))
}

case $action in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
