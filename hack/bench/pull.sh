#!/usr/bin/env bash
# Cold pull of the ~200 MB fixture images (incompressible and text-like) from a loopback
# docker-registry: berth (image/examples/pull.rs: download + verify + unpack into
# snapshots) vs containerd (`ctr image pull`, which fetches and unpacks, against a
# private containerd) vs `skopeo copy` into a local dir (download only). Runs are
# interleaved; medians, MB/s (compressed bytes / wall time) and ratios are printed.
#
# Usage: hack/bench/pull.sh [RUNS]   (root; default 5 runs)
#   DROP_CACHES=1 drops the page cache before every run (then the registry's disk reads
#   dominate); by default the registry's blobs stay cached, so the pipelines are compared.
set -euo pipefail

RUNS=${1:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /var/tmp/berth-bench-pull.XXXXXX)
CTD_PID=""

cleanup() {
    set +e
    [ -n "$CTD_PID" ] && kill "$CTD_PID" 2>/dev/null && wait "$CTD_PID" 2>/dev/null
    exec 3>&- 2>/dev/null
    [ -n "${REG_PID:-}" ] && wait "$REG_PID" 2>/dev/null
    grep -q " $WORK/" /proc/mounts && grep " $WORK/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$WORK"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "pull.sh needs root (overlay snapshots, containerd)" >&2; exit 1; }

echo "building berth's pull example (release)..." >&2
(cd "$ROOT" && cargo build --release -q -p berth-image --example pull --example bench_registry)
BIN=$CARGO_TARGET_DIR/release/examples

echo "building fixture images and starting the registry (first run builds ~400 MB)..." >&2
mkfifo "$WORK/ctl"
"$BIN/bench_registry" <"$WORK/ctl" >"$WORK/registry.out" &
REG_PID=$!
exec 3>"$WORK/ctl"
for _ in $(seq 1 600); do
    grep -q '^SIZE bench/text' "$WORK/registry.out" 2>/dev/null && break
    kill -0 "$REG_PID" 2>/dev/null || { echo "bench_registry failed" >&2; exit 1; }
    sleep 1
done
HOST=$(awk '$1=="HOST"{print $2}' "$WORK/registry.out")
echo "registry at $HOST" >&2

start_containerd() {
    local d=$WORK/ctd
    rm -rf "$d"; mkdir -p "$d"
    cat >"$d/config.toml" <<TOML
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/ctd.sock"
[ttrpc]
  address = "$d/ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
TOML
    containerd --config "$d/config.toml" >"$d/log" 2>&1 &
    CTD_PID=$!
    for _ in $(seq 1 100); do
        ctr --address "$d/ctd.sock" version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "containerd did not start:" >&2; cat "$d/log" >&2; exit 1
}

stop_containerd() {
    kill "$CTD_PID"; wait "$CTD_PID" 2>/dev/null || true; CTD_PID=""
    grep " $WORK/ctd" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l || true
    rm -rf "$WORK/ctd"
}

now() { date +%s.%N; }

run_one() { # tool image -> seconds on stdout
    local tool=$1 image=$2 ref="$HOST/$2" t0 t1
    sync
    if [ "${DROP_CACHES:-0}" = 1 ]; then echo 3 >/proc/sys/vm/drop_caches; fi
    case $tool in
    berth)
        rm -rf "$WORK/berth"
        t0=$(now)
        "$BIN/pull" --plain-http "$HOST" "$WORK/berth" "$ref" >"$WORK/berth.out"
        t1=$(now)
        rm -rf "$WORK/berth" ;;
    containerd)
        start_containerd
        t0=$(now)
        ctr --address "$WORK/ctd/ctd.sock" -n bench image pull --plain-http "$ref" >"$WORK/ctr.out"
        t1=$(now)
        stop_containerd ;;
    skopeo)
        rm -rf "$WORK/skopeo"
        t0=$(now)
        skopeo copy -q --src-tls-verify=false "docker://$ref" "dir:$WORK/skopeo"
        t1=$(now)
        rm -rf "$WORK/skopeo" ;;
    esac
    echo "$t1 - $t0" | bc -l
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

for image in bench/random:1 bench/text:1; do
    size=$(awk -v n="$image" '$1=="SIZE" && $2==n {print $3}' "$WORK/registry.out")
    raw=$(awk -v n="$image" '$1=="SIZE" && $2==n {print $4}' "$WORK/registry.out")
    declare -A times=()
    for i in $(seq 1 "$RUNS"); do
        for tool in berth containerd skopeo; do
            s=$(run_one "$tool" "$image")
            times[$tool]+="$s "
            printf '%-8s %-16s run %d: %.3f s\n' "$tool" "$image" "$i" "$s" >&2
        done
    done
    echo
    echo "== $image: $((size / 1000000)) MB compressed, $((raw / 1000000)) MB unpacked, $RUNS interleaved runs"
    printf '%-11s %10s %16s %14s\n' tool "median s" "MB/s compressed" "MB/s unpacked"
    for tool in berth containerd skopeo; do
        m=$(echo "${times[$tool]}" | tr ' ' '\n' | grep . | median)
        eval "med_$tool=$m"
        printf '%-11s %10.3f %16.1f %14.1f\n' "$tool" "$m" "$(echo "$size / 1000000 / $m" | bc -l)" "$(echo "$raw / 1000000 / $m" | bc -l)"
    done
    printf 'berth vs containerd: %.2fx faster   berth vs skopeo copy (download only): %.2fx\n' \
        "$(echo "$med_containerd / $med_berth" | bc -l)" "$(echo "$med_skopeo / $med_berth" | bc -l)"
    unset times
done
