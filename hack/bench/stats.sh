#!/usr/bin/env bash
# `berth stats --no-stream` vs `podman stats --no-stream` (podman 4.3, runc, cgroupfs)
# with COUNT running busybox containers each (default 20): one warm-up each, then N
# interleaved timed runs (default 10); medians and the ratio (goal <= 0.50).
#
# berth's --no-stream takes as `precpu` the newest of berthd's last three reads of the
# container that is 0.1-10 s old (as here after the warm-up), else it reads twice 200 ms apart (the
# first-call cost, printed separately); Docker waits for its collector's next
# one-second tick. podman's first read reports CPU since the container started.
#
# Usage: hack/bench/stats.sh [RUNS] [COUNT]   (root)
# PROFILE=debug uses $CARGO_TARGET_DIR/debug binaries as built (no release build).
# Everything lives in a temp dir and is removed on exit.
set -euo pipefail

N=${1:-10}
COUNT=${2:-20}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/hack/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${PROFILE:-release}
WORK=$(mktemp -d /tmp/berth-bench-stats.XXXXXX)
BERTHD_PID=""

[ "$(id -u)" = 0 ] || { echo "stats.sh needs root (containers)" >&2; exit 1; }

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

if [ "$PROFILE" = release ]; then
    echo "building berthd, berth-shim and berth (release)..." >&2
    (cd "$ROOT" && cargo build --release -q --locked -p berth-daemon -p berth-shim -p berth-cli)
fi
BIN=$CARGO_TARGET_DIR/$PROFILE

busybox_rootfs_tar "$WORK/rootfs" "$WORK/busybox.tar"

echo "starting a private berthd..." >&2
start_berthd "$BIN" "$WORK/berth" || exit 1
"$BIN/berth" import --change 'CMD ["/bin/sh"]' - busybox:latest <"$WORK/busybox.tar" >/dev/null

podman_setup "$WORK/busybox.tar"

echo "starting $COUNT containers in each..." >&2
for i in $(seq "$COUNT"); do
    "$BIN/berth" run -d --network none --name "s$i" busybox sleep 100000 >/dev/null
    podman_ run -d --network none --name "s$i" localhost/busybox:latest sleep 100000 >/dev/null
done

us() {
    local s e
    s=$(date +%s%N)
    "$@" >"$WORK/last.out" 2>"$WORK/last.err" || { echo "failed: $*" >&2; cat "$WORK/last.err" >&2; exit 1; }
    e=$(date +%s%N)
    [ "$(wc -l <"$WORK/last.out")" -eq $((COUNT + 1)) ] || { echo "short table from: $*" >&2; cat "$WORK/last.out" >&2; exit 1; }
    echo $(((e - s) / 1000))
}
stats_berth() { us "$BIN/berth" stats --no-stream; }
stats_podman() { us podman_ stats --no-stream; }

echo "warm-up..." >&2
cold=$(stats_berth)
stats_podman >/dev/null
berth_t=() podman_t=()
echo "timing $N interleaved runs..." >&2
for _ in $(seq "$N"); do
    berth_t+=("$(stats_berth)")
    podman_t+=("$(stats_podman)")
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
ms() { printf '%d.%01d ms' $(($1 / 1000)) $((($1 % 1000) / 100)); }
b=$(median "${berth_t[@]}")
p=$(median "${podman_t[@]}")
printf 'runs: %d interleaved (after one warm-up each), %d running containers, %s binaries\n' "$N" "$COUNT" "$PROFILE"
printf '%-40s median %s\n' "berth stats --no-stream" "$(ms "$b")"
printf '%-40s median %s\n' "podman stats --no-stream" "$(ms "$p")"
printf '%-40s once   %s\n' "berth stats --no-stream, first call" "$(ms "$cold")"
awk -v b="$b" -v p="$p" 'BEGIN { printf "ratio berth/podman: %.2f (goal <= 0.50)\n", b / p }'
