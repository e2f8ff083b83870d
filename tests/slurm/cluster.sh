#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for tests/test_slurm.py.
#
#   tests/slurm/cluster.sh up     # start munge, slurmctld and slurmd; wait until the node is idle
#   tests/slurm/cluster.sh down   # cancel this cluster's jobs and stop the three daemons (by their pid files)
#   tests/slurm/cluster.sh status
#
# Needs root and Debian's packages: apt-get install --no-install-recommends slurm-wlm munge
# One node named after `hostname -s` with `nproc` CPUs, one partition "debug"; select/cons_tres (CPUs are the
# consumable), proctrack/linuxproc and task/none, so no cgroups are needed (containers and CI runners rarely allow
# them); no accounting database. Everything runs as root, which only a throwaway test machine should do.
set -euo pipefail

CONF_DIR=${TWI_SLURM_CONF_DIR:-/etc/slurm}
STATE=${TWI_SLURM_STATE:-/var/spool/twi-slurm}
RUN=/run/twi-slurm
NODE=$(hostname -s)
CPUS=$(nproc)

write_conf() {
    mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$RUN" /var/log/slurm
    # Memory: slurmd refuses a node that reports less than configured, so configure what it has (MB, minus slack).
    local mem
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    cat > "$CONF_DIR/slurm.conf" <<CONF
# Written by tests/slurm/cluster.sh: a single-node test cluster.
ClusterName=twi-test
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=/var/log/slurm/twi-slurmctld.log
SlurmdLogFile=/var/log/slurm/twi-slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
NodeName=$NODE CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
    if [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
        return
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
            || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

up() {
    local t0=$SECONDS
    write_conf
    start_munge
    alive "$RUN/slurmctld.pid" || slurmctld
    alive "$RUN/slurmd.pid" || slurmd
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
        case "$state" in
            idle*|mixed*|allocated*) echo "slurm up: node $NODE ($CPUS CPUs) $state after $((SECONDS - t0)) s"; return 0 ;;
            down*|drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
        esac
        sleep 1
    done
    echo "slurm did not come up; see /var/log/slurm/twi-slurm*.log" >&2
    return 1
}

stop_pidfile() {
    if alive "$1"; then
        local pid
        pid=$(cat "$1")
        kill "$pid"
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
    fi
}

down() {
    # Only this cluster's jobs exist on it; cancel them by id before stopping the daemons.
    local ids
    ids=$(squeue -h -o %A 2>/dev/null || true)
    [ -z "$ids" ] || scancel $ids || true
    stop_pidfile "$RUN/slurmd.pid"
    stop_pidfile "$RUN/slurmctld.pid"
    stop_pidfile /run/munge/munged.pid
    echo "slurm down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) sinfo && squeue ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
