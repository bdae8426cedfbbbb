#!/usr/bin/env bash
# Exec latency: `berth exec <running> true` (through a private berthd) vs `podman exec
# <running> true` (podman 4.3, runc, cgroupfs), each into a container of the same
# busybox image (built from the host's /bin/busybox) started once before; one warm-up
# exec each, then interleaved timed execs; medians and the ratio (goal <= 0.5).
#
# Usage: [PROFILE=debug] hack/bench/exec.sh [RUNS]   (root; default 20)
# Everything (berthd, podman's root/runroot/config) lives in a temp dir and is removed
# on exit; nothing global is configured.
set -euo pipefail

N=${1:-20}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/hack/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /tmp/berth-bench-exec.XXXXXX)
BERTHD_PID=""

[ "$(id -u)" = 0 ] || { echo "exec.sh needs root (containers)" >&2; exit 1; }

cleanup() {
    set +e
    if [ -n "$BERTHD_PID" ]; then
        for c in $("$BIN/berth" ps -aq 2>/dev/null); do "$BIN/berth" rm -f "$c" >/dev/null 2>&1; done
        kill "$BERTHD_PID" 2>/dev/null
        wait "$BERTHD_PID" 2>/dev/null
    fi
    podman_cleanup
    remove_berth_leftovers
}
trap cleanup EXIT

# PROFILE=debug times the debug binaries (no release build at hand); figures from it
# are an upper bound for berth.
PROFILE=${PROFILE:-release}
echo "building berthd, berth-shim and berth ($PROFILE)..." >&2
(cd "$ROOT" && cargo build --profile "$([ "$PROFILE" = debug ] && echo dev || echo release)" -q --locked -p berth-daemon -p berth-shim -p berth-cli)
BIN=$CARGO_TARGET_DIR/$PROFILE

# The image: the host's static busybox with its applets, as one tar.
busybox_rootfs_tar "$WORK/rootfs" "$WORK/busybox.tar"

echo "starting a private berthd..." >&2
start_berthd "$BIN" "$WORK/berth" || exit 1
"$BIN/berth" import --change 'CMD ["/bin/sh"]' - busybox:latest <"$WORK/busybox.tar" >/dev/null

podman_setup "$WORK/busybox.tar"

echo "starting a container in each..." >&2
"$BIN/berth" run -d --name bench-exec --network none busybox sleep 1000000 >/dev/null
podman_ run -d --name bench-exec --network none localhost/busybox:latest sleep 1000000 >/dev/null

# One timed command: prints microseconds; aborts the bench if the command fails.
us() {
    local s e
    s=$(date +%s%N)
    "$@" >/dev/null 2>"$WORK/last.err" || { echo "failed: $*" >&2; cat "$WORK/last.err" >&2; exit 1; }
    e=$(date +%s%N)
    echo $(((e - s) / 1000))
}
exec_berth() { us "$BIN/berth" exec bench-exec true; }
exec_podman() { us podman_ exec bench-exec true; }

echo "warm-up..." >&2
exec_berth >/dev/null
exec_podman >/dev/null

berth_t=() podman_t=()
echo "timing $N interleaved execs..." >&2
for _ in $(seq "$N"); do
    berth_t+=("$(exec_berth)")
    podman_t+=("$(exec_podman)")
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
ms() { printf '%d.%01d ms' $(($1 / 1000)) $((($1 % 1000) / 100)); }
b=$(median "${berth_t[@]}")
p=$(median "${podman_t[@]}")
printf 'execs: %d interleaved (after one warm-up each)\n' "$N"
printf '%-40s median %s\n' "berth exec <running> true" "$(ms "$b")"
printf '%-40s median %s\n' "podman exec <running> true" "$(ms "$p")"
awk -v b="$b" -v p="$p" 'BEGIN { printf "ratio berth/podman: %.2f (goal <= 0.50)\n", b / p }'
