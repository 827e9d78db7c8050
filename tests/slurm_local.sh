#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for tests/test_run_multi.py's job-array test (Debian, as root):
#     bash tests/slurm_local.sh start     install Debian's slurm packages if missing, start munge, slurmctld, slurmd
#     bash tests/slurm_local.sh stop
# Its state and logs live in /tmp/hat-slurm. Exit status 0 once `sinfo` shows the node idle.
set -euo pipefail
STATE=/tmp/hat-slurm
HOST=$(hostname -s)

start() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            slurmctld slurmd slurm-client munge >/dev/null
    fi
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        [ -f /etc/munge/munge.key ] || mungekey --create
        chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
        mkdir -p /run/munge && chown munge:munge /run/munge
        runuser -u munge -- /usr/sbin/munged
    fi
    mkdir -p "$STATE/spool" "$STATE/state"
    local mem=$(( $(free -m | awk '/^Mem:/ {print $2}') * 9 / 10 ))
    cat > /etc/slurm/slurm.conf <<EOF
ClusterName=hat
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
NodeName=$HOST CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 1 60); do
        case "$(sinfo -h -o %t 2>/dev/null)" in
            idle*) return 0 ;;
            down*|drain*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    echo "slurm did not come up; see $STATE/slurmctld.log and $STATE/slurmd.log" >&2
    return 1
}

stop() {
    for pid in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" /run/munge/munged.pid; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    done
}

"${1:?usage: $0 start|stop}"
