#!/usr/bin/env bash
# cp out of a running container: `berth cp <running>:/tree DEST` (through a private
# berthd) vs `podman cp <running>:/tree DEST` (podman 4.3, runc, cgroupfs), each from a
# container of the same busybox image holding the same 200 MiB tree (200 files of
# 1 MiB and 2000 of 1 KiB in 4 directories, written by the container itself); one
# warm-up copy each, then interleaved timed copies into fresh destinations; medians
# and the ratio (goal <= 0.5). Then the other way: the same tree from the host into
# each running container, timed the same way.
#
# Usage: [PROFILE=debug] [BUILD=0] hack/bench/cp.sh [RUNS]   (root; default 10)
# Everything (berthd, podman's root/runroot/config, the copies) lives in a temp dir
# and is removed on exit; nothing global is configured.
set -euo pipefail

N=${1:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/hack/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /tmp/berth-bench-cp.XXXXXX)
BERTHD_PID=""

[ "$(id -u)" = 0 ] || { echo "cp.sh needs root (containers)" >&2; exit 1; }

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
# BUILD=0 times the binaries already built in $CARGO_TARGET_DIR/$PROFILE.
if [ "${BUILD:-1}" != 0 ]; then
echo "building berthd, berth-shim and berth ($PROFILE)..." >&2
(cd "$ROOT" && cargo build --profile "$([ "$PROFILE" = debug ] && echo dev || echo release)" -q --locked -p berth-daemon -p berth-shim -p berth-cli)
fi
BIN=$CARGO_TARGET_DIR/$PROFILE

busybox_rootfs_tar "$WORK/rootfs" "$WORK/busybox.tar"

echo "starting a private berthd..." >&2
start_berthd "$BIN" "$WORK/berth" || exit 1
"$BIN/berth" import --change 'CMD ["/bin/sh"]' - busybox:latest <"$WORK/busybox.tar" >/dev/null

podman_setup "$WORK/busybox.tar"

# The tree, written inside each container (so it sits in its writable layer).
TREE='for d in 1 2 3 4; do mkdir -p /tree/d$d/small
  for i in $(seq 50); do head -c 1048576 /dev/urandom >/tree/d$d/f$i; done
  for i in $(seq 500); do head -c 1024 /dev/urandom >/tree/d$d/small/s$i; done; done'

echo "starting a container in each and writing its 200 MiB tree..." >&2
"$BIN/berth" run -d --name bench-cp --network none busybox sleep 1000000 >/dev/null
podman_ run -d --name bench-cp --network none localhost/busybox:latest sleep 1000000 >/dev/null
"$BIN/berth" exec bench-cp sh -c "$TREE"
podman_ exec bench-cp sh -c "$TREE"

# One timed copy into a fresh destination: prints microseconds, checks the size,
# removes the copy; aborts the bench if the command fails.
us() {
    local dest=$1 s e
    shift
    s=$(date +%s%N)
    "$@" "$dest" >/dev/null 2>"$WORK/last.err" || { echo "failed: $*" >&2; cat "$WORK/last.err" >&2; exit 1; }
    e=$(date +%s%N)
    local kib
    kib=$(du -sk "$dest" | cut -f1)
    [ "$kib" -ge 200000 ] || { echo "copy too small: $kib KiB in $dest" >&2; exit 1; }
    rm -rf "$dest"
    echo $(((e - s) / 1000))
}
cp_berth() { us "$WORK/out-berth" "$BIN/berth" cp bench-cp:/tree; }
cp_podman() { us "$WORK/out-podman" podman_ cp bench-cp:/tree; }

echo "warm-up..." >&2
cp_berth >/dev/null
cp_podman >/dev/null

# The other way: the same tree made on the host, copied into each container under
# a fresh name (removed, untimed, after each copy).
mkdir -p "$WORK/src"
(cd "$WORK/src" && sh -c "$(echo "$TREE" | sed 's|/tree|.|g')")
in_us() {
    local s e
    s=$(date +%s%N)
    "$@" "$WORK/src" bench-cp:/in >/dev/null 2>"$WORK/last.err" || { echo "failed: $*" >&2; cat "$WORK/last.err" >&2; exit 1; }
    e=$(date +%s%N)
    echo $(((e - s) / 1000))
}
in_berth() {
    local t
    t=$(in_us "$BIN/berth" cp)
    [ "$("$BIN/berth" exec bench-cp du -sk /in | cut -f1)" -ge 200000 ] || { echo "berth copy in too small" >&2; exit 1; }
    "$BIN/berth" exec bench-cp rm -rf /in
    echo "$t"
}
in_podman() {
    local t
    t=$(in_us podman_ cp)
    [ "$(podman_ exec bench-cp du -sk /in | cut -f1)" -ge 200000 ] || { echo "podman copy in too small" >&2; exit 1; }
    podman_ exec bench-cp rm -rf /in
    echo "$t"
}
in_berth >/dev/null
in_podman >/dev/null

berth_t=() podman_t=() berth_in=() podman_in=()
echo "timing $N interleaved copies each way..." >&2
for _ in $(seq "$N"); do
    berth_t+=("$(cp_berth)")
    podman_t+=("$(cp_podman)")
    berth_in+=("$(in_berth)")
    podman_in+=("$(in_podman)")
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
ms() { printf '%d.%01d ms' $(($1 / 1000)) $((($1 % 1000) / 100)); }
b=$(median "${berth_t[@]}")
p=$(median "${podman_t[@]}")
bi=$(median "${berth_in[@]}")
pi=$(median "${podman_in[@]}")
printf 'copies of a 200 MiB tree (%s binaries): %d interleaved each way (after one warm-up each)\n' "$PROFILE" "$N"
printf '%-44s median %s\n' "berth cp <running>:/tree DEST" "$(ms "$b")"
printf '%-44s median %s\n' "podman cp <running>:/tree DEST" "$(ms "$p")"
awk -v b="$b" -v p="$p" 'BEGIN { printf "ratio berth/podman, out: %.2f (goal <= 0.50)\n", b / p }'
printf '%-44s median %s\n' "berth cp SRC <running>:/in" "$(ms "$bi")"
printf '%-44s median %s\n' "podman cp SRC <running>:/in" "$(ms "$pi")"
awk -v b="$bi" -v p="$pi" 'BEGIN { printf "ratio berth/podman, in:  %.2f\n", b / p }'
