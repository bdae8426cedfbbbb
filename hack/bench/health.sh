#!/usr/bin/env bash
# The CPU cost of health checks: COUNT running busybox containers (default 50), each
# with `--health-cmd true --health-interval 1s`, for SECONDS (default 60); berthd's and
# the shims' CPU time (utime+stime from /proc/<pid>/stat) over that time, as a share of
# one core (goal <= 5 %). The same with no checks is printed beside it, for the base.
#
# Usage: hack/bench/health.sh [COUNT] [SECONDS]   (root)
# PROFILE=debug uses $CARGO_TARGET_DIR/debug binaries as built (no release build).
# Everything lives in a temp dir and is removed on exit.
set -euo pipefail

COUNT=${1:-50}
SECS=${2:-60}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/hack/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${PROFILE:-release}
WORK=$(mktemp -d /tmp/berth-bench-health.XXXXXX)
BERTHD_PID=""

[ "$(id -u)" = 0 ] || { echo "health.sh needs root (containers)" >&2; exit 1; }

cleanup() {
    set +e
    if [ -n "$BERTHD_PID" ]; then
        for c in $("$BIN/berth" ps -aq 2>/dev/null); do "$BIN/berth" rm -f "$c" >/dev/null 2>&1; done
        kill "$BERTHD_PID" 2>/dev/null
        wait "$BERTHD_PID" 2>/dev/null
    fi
    grep " $WORK/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$WORK"
    remove_berth_leftovers
}
trap cleanup EXIT

if [ "$PROFILE" = release ]; then
    echo "building berthd, berth-shim and berth (release)..." >&2
    (cd "$ROOT" && cargo build --release -q --locked -p berth-daemon -p berth-shim -p berth-cli)
fi
BIN=$CARGO_TARGET_DIR/$PROFILE
HZ=$(getconf CLK_TCK)

busybox_rootfs_tar "$WORK/rootfs" "$WORK/busybox.tar"
start_berthd "$BIN" "$WORK/berth" || exit 1
# Every container here is --network none: this berthd makes no bridge, so a berth-br0
# that appears meanwhile is another berthd's, and the cleanup leaves it.
BERTH_BR0_BEFORE=1
"$BIN/berth" import --change 'CMD ["/bin/sh"]' - busybox:latest <"$WORK/busybox.tar" >/dev/null

# Clock ticks used by berthd ("berthd") or by every shim of this run ("shims"; their
# command lines name WORK).
ticks() {
    local total=0 p f
    for p in /proc/[0-9]*; do
        if [ "$1" = berthd ]; then
            [ "${p#/proc/}" = "$BERTHD_PID" ] || continue
        else
            { tr '\0' ' ' <"$p/cmdline" | grep -q "berth-shim.*$WORK"; } 2>/dev/null || continue
        fi
        # Fields 14 and 15 (utime, stime), counted after the ")" that ends the name.
        f=$(sed 's/.*) //' "$p/stat" 2>/dev/null) || continue
        total=$((total + $(echo "$f" | awk '{print $12 + $13}')))
    done
    echo "$total"
}

# "total% (berthd% + shims%)" over SECS.
measure() {
    local b0 s0 b1 s1
    b0=$(ticks berthd) s0=$(ticks shims)
    sleep "$SECS"
    b1=$(ticks berthd) s1=$(ticks shims)
    awk -v b=$((b1 - b0)) -v s=$((s1 - s0)) -v hz="$HZ" -v t="$SECS" \
        'BEGIN { f = 100 / hz / t; printf "%.2f (berthd %.2f + shims %.2f)", (b + s) * f, b * f, s * f }'
}

echo "starting $COUNT containers without checks..." >&2
for i in $(seq "$COUNT"); do
    "$BIN/berth" run -d --network none --name "plain$i" busybox sleep 100000 >/dev/null
done
sleep 2
base=$(measure)
for c in $("$BIN/berth" ps -aq); do "$BIN/berth" rm -f "$c" >/dev/null; done

echo "starting $COUNT containers with a 1 s check..." >&2
for i in $(seq "$COUNT"); do
    "$BIN/berth" run -d --network none --name "h$i" --health-cmd true --health-interval 1s \
        busybox sleep 100000 >/dev/null
done
for _ in $(seq 100); do
    [ "$("$BIN/berth" ps --format '{{.Status}}' | grep -c '(healthy)')" -eq "$COUNT" ] && break
    sleep 0.2
done
checked=$(measure)
healthy=$("$BIN/berth" ps --format '{{.Status}}' | grep -c '(healthy)' || true)

printf '%d containers, %d s, %s binaries; berthd + shims CPU time as %% of one core\n' "$COUNT" "$SECS" "$PROFILE"
printf '%-36s %s %%\n' "no health checks" "$base"
printf '%-36s %s %%  (%d healthy at the end)\n' "--health-cmd true --health-interval 1s" "$checked" "$healthy"
awk -v c="${checked%% *}" 'BEGIN { printf "goal: <= 5 %% of one core: %s\n", (c <= 5 ? "met" : "not met") }'
