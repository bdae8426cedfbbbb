#!/usr/bin/env bash
# Pod and container start and teardown through CRI: a real berthd vs Debian's containerd
# (1.6, its built-in CRI plugin), the same requests from one Rust CRI client
# (test/e2e/examples/cri_bench.rs): RunPodSandbox, CreateContainer, StartContainer,
# StopPodSandbox+RemovePodSandbox; N interleaved rounds, medians and ratios. Then the
# shims' memory: MEM_PODS pods of MEM_CONTAINERS sleeping containers on each, PSS per
# pod of berth-shim and of containerd-shim-runc-v2 (both one shim per pod). Then ExecSync
# latency (kubelet's exec probes): EXEC_CALLS interleaved calls of `true` in one running
# container on each, medians and p99. Root only.
#
# Everything lives in one work directory; the trap removes what a run leaves behind
# however it ends: pods (over CRI while the daemons are up), then processes, cgroups,
# mounts (pinned namespaces, rootfs), bridges and the directory itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-20}
MEM_PODS=${MEM_PODS:-10}
MEM_CONTAINERS=${MEM_CONTAINERS:-3}
EXEC_CALLS=${EXEC_CALLS:-100}
# ONLY=execsync runs the ExecSync part alone.
ONLY=${ONLY:-}
if [ "$(id -u)" != 0 ]; then
    echo "cri.sh: run as root (pods need namespaces, mounts and cgroups)" >&2
    exit 1
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build -q --release -p berth-daemon --bin berthd -p berth-shim --bin berth-shim
cargo build -q --release -p berth-e2e --example cri_bench
BENCH=$CARGO_TARGET_DIR/release/examples/cri_bench

WORK=$(mktemp -d /tmp/berth-bench-cri.XXXXXX)
CGROUP=$(basename "$WORK") # the pods' cgroup parent is /$CGROUP/{berth,containerd}

# Processes whose command line names the work dir: berthd, containerd, their shims,
# the registry (TMPDIR points into the work dir).
work_pids() {
    local p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$$" ] && continue
        if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$WORK"; then
            echo "${p#/proc/}"
        fi
    done
}

cleanup() {
    local rc=$? pids pid i dir m
    trap - EXIT INT TERM
    # 0. The bench itself, if a signal cut it short (its daemons stay up for step 1).
    if [ -n "${BENCH_PID:-}" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    # 1. Pods, over CRI, while the daemons still answer.
    timeout 120 "$BENCH" cleanup "$WORK" || true
    # 2. The daemons, shims and registry: SIGTERM, then SIGKILL.
    pids=$(work_pids)
    if [ -n "$pids" ]; then
        echo "cleanup: stopping leftover processes: $(echo $pids)" >&2
        kill -TERM $pids 2>/dev/null || true
        for i in $(seq 50); do
            pids=$(work_pids)
            [ -z "$pids" ] && break
            sleep 0.1
        done
        [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
    fi
    # 3. Containers still in the run's cgroups, then the cgroups, deepest first.
    for dir in /sys/fs/cgroup/"$CGROUP" /sys/fs/cgroup/*/"$CGROUP"; do
        [ -d "$dir" ] || continue
        for i in 1 2 3; do
            pids=$(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
            [ -z "$pids" ] && break
            echo "cleanup: killing processes left in $dir: $(echo $pids)" >&2
            kill -KILL $pids 2>/dev/null || true
            sleep 0.2
        done
        find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [ -d "$dir" ] && echo "cleanup: could not remove cgroup $dir" >&2
    done
    # 4. Mounts under the work dir (rootfs, pinned namespaces), deepest first.
    for m in $(awk -v w="$WORK" 'index($5, w "/") == 1 {print $5}' /proc/self/mountinfo | sort -r); do
        echo "cleanup: unmounting $m" >&2
        umount -l "$m" 2>/dev/null || true
    done
    # 5. The bridges, and the work dir.
    for b in bbenchb0 bbenchc0; do
        ip link del "$b" 2>/dev/null || true
    done
    rm -rf --one-file-system "$WORK" || echo "cleanup: could not remove $WORK" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK/tmp"
if [ -z "$ONLY" ]; then
    # In the background, so a signal to this script runs the trap at once (bash defers
    # traps while a foreground command runs).
    TMPDIR=$WORK/tmp "$BENCH" bench "$N" "$WORK" &
    BENCH_PID=$!
    wait "$BENCH_PID"
    # Then the shims' memory per pod: MEM_PODS pods of MEM_CONTAINERS containers each.
    echo
    TMPDIR=$WORK/tmp "$BENCH" memory "$MEM_PODS" "$MEM_CONTAINERS" "$WORK" &
    BENCH_PID=$!
    wait "$BENCH_PID"
    echo
fi
# ExecSync latency.
TMPDIR=$WORK/tmp "$BENCH" execsync "$EXEC_CALLS" "$WORK" &
BENCH_PID=$!
wait "$BENCH_PID"
