#!/usr/bin/env bash
# `berth run --rm --network none busybox true` (through a private berthd) vs
# `podman run --rm --network none` (podman 4.3, runc, cgroupfs) and, when containerd is
# installed, `ctr run --rm` (containerd 1.6, loopback-only netns) with its runc-v2 shim
# and with berth-shim as `io.containerd.berth.v1` (same client, only the shim and
# runtime differ).
# Then `berth run --rm busybox true` on berth's default bridge network vs `podman run
# --rm --network bridge` on Podman's default network (podman 4.3's CNI backend: bridge
# cni-podman0, host-local, portmap, firewall, tuning from /usr/lib/cni; its CNI cache
# and leases on a tmpfs in a private mount namespace, see podman_net_ in hack/lib.sh;
# nothing leaves the host).
# Same busybox image everywhere (built from the host's /bin/busybox, present before the
# first run); one warm-up run each, then interleaved timed runs; medians and ratios.
#
# Usage: hack/bench/run.sh [RUNS]   (root; default 20)
#   BERTH_BENCH_BIN=DIR: time the berthd, berth-shim and berth in DIR instead of
#   building this checkout's.
# Everything (berthd, containerd, podman's root/runroot/config) lives in a temp dir and
# is removed on exit; nothing global is configured.
set -euo pipefail

N=${1:-20}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/hack/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /tmp/berth-bench-run.XXXXXX)
BERTHD_PID=""
CTD_PID=""
CTR_NS=bench-run-$$

[ "$(id -u)" = 0 ] || { echo "run.sh needs root (containers)" >&2; exit 1; }

ctr_() { ctr --address "$WORK/ctd/c.sock" --namespace "$CTR_NS" "$@"; }

cleanup() {
    set +e
    if [ -n "$BERTHD_PID" ]; then
        for c in $("$BIN/berth" ps -aq 2>/dev/null); do "$BIN/berth" rm -f "$c" >/dev/null 2>&1; done
        kill "$BERTHD_PID" 2>/dev/null
        wait "$BERTHD_PID" 2>/dev/null
    fi
    if [ -n "$CTD_PID" ]; then
        for id in $(ctr_ task ls -q 2>/dev/null); do ctr_ task kill -s SIGKILL "$id" >/dev/null 2>&1; done
        for id in $(ctr_ container ls -q 2>/dev/null); do ctr_ container rm "$id" >/dev/null 2>&1; done
        kill "$CTD_PID" 2>/dev/null
        wait "$CTD_PID" 2>/dev/null
    fi
    podman_cleanup
    rm -rf "/run/berth/runtime/$CTR_NS"
    # containerd puts its containers' cgroups under /<namespace>/ in every hierarchy.
    find /sys/fs/cgroup -maxdepth 2 -type d -name "$CTR_NS" 2>/dev/null |
        while read -r d; do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    remove_berth_leftovers
}
trap cleanup EXIT

if [ -n "${BERTH_BENCH_BIN:-}" ]; then
    # Binaries built elsewhere (e.g. an older commit's, for a before/after figure).
    BIN=$BERTH_BENCH_BIN
else
    echo "building berthd, berth-shim and berth (release)..." >&2
    (cd "$ROOT" && cargo build --release -q --locked -p berth-daemon -p berth-shim -p berth-cli)
    BIN=$CARGO_TARGET_DIR/release
fi

# The image: the host's static busybox with its applets, as one tar.
busybox_rootfs_tar "$WORK/rootfs" "$WORK/busybox.tar"

echo "starting a private berthd..." >&2
start_berthd "$BIN" "$WORK/berth" || exit 1
"$BIN/berth" import --change 'CMD ["/bin/sh"]' - busybox:latest <"$WORK/busybox.tar" >/dev/null

podman_setup "$WORK/busybox.tar"

CTR=""
if command -v containerd >/dev/null && command -v ctr >/dev/null; then
    echo "starting a private containerd..." >&2
    mkdir -p "$WORK/ctd/bin"
    ln -s "$BIN/berth-shim" "$WORK/ctd/bin/containerd-shim-berth-v1"
    cat >"$WORK/ctd/config.toml" <<TOML
version = 2
root = "$WORK/ctd/root"
state = "$WORK/ctd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$WORK/ctd/c.sock"
[ttrpc]
  address = "$WORK/ctd/c.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
TOML
    PATH="$WORK/ctd/bin:$PATH" containerd --config "$WORK/ctd/config.toml" >"$WORK/ctd/log" 2>&1 &
    CTD_PID=$!
    for _ in $(seq 100); do ctr_ version >/dev/null 2>&1 && break; sleep 0.1; done
    podman_copy save -q -o "$WORK/busybox-image.tar" localhost/busybox:latest >/dev/null
    ctr_ image import "$WORK/busybox-image.tar" >/dev/null
    CTR=$(ctr_ image ls -q | head -n1)
fi

# One timed command: prints microseconds; aborts the bench if the command fails.
us() {
    local s e
    s=$(date +%s%N)
    "$@" >/dev/null 2>"$WORK/last.err" || { echo "failed: $*" >&2; cat "$WORK/last.err" >&2; exit 1; }
    e=$(date +%s%N)
    echo $(((e - s) / 1000))
}
run_berth() { us "$BIN/berth" run --rm --network none busybox true; }
run_podman() { us podman_ run --rm --network none localhost/busybox:latest true; }
run_ctr() { us ctr_ run --rm --runtime io.containerd.runc.v2 "$CTR" "bench-r-$1" true; }
run_berth_br() { us "$BIN/berth" run --rm busybox true; }
run_podman_br() { us podman_net_ run --rm --network bridge localhost/busybox:latest true; }
run_ctr_berth() { us ctr_ run --rm --runtime io.containerd.berth.v1 "$CTR" "bench-b-$1" true; }

echo "warm-up..." >&2
run_berth >/dev/null
run_podman >/dev/null
run_berth_br >/dev/null
run_podman_br >/dev/null
if [ -n "$CTR" ]; then
    run_ctr warmup >/dev/null
    run_ctr_berth warmup >/dev/null
fi

berth_t=() podman_t=() ctr_t=() ctr_berth_t=() berth_br_t=() podman_br_t=()
echo "timing $N interleaved runs..." >&2
for i in $(seq "$N"); do
    berth_t+=("$(run_berth)")
    podman_t+=("$(run_podman)")
    berth_br_t+=("$(run_berth_br)")
    podman_br_t+=("$(run_podman_br)")
    if [ -n "$CTR" ]; then
        ctr_t+=("$(run_ctr "$i")")
        ctr_berth_t+=("$(run_ctr_berth "$i")")
    fi
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
ms() { printf '%d.%01d ms' $(($1 / 1000)) $((($1 % 1000) / 100)); }
b=$(median "${berth_t[@]}")
p=$(median "${podman_t[@]}")
bb=$(median "${berth_br_t[@]}")
pb=$(median "${podman_br_t[@]}")
printf 'runs: %d interleaved (after one warm-up each)\n' "$N"
printf '%-58s median %s\n' "berth run --rm --network none busybox true" "$(ms "$b")"
printf '%-58s median %s\n' "podman run --rm --network none busybox true" "$(ms "$p")"
if [ -n "$CTR" ]; then
    c=$(median "${ctr_t[@]}")
    cb=$(median "${ctr_berth_t[@]}")
    printf '%-58s median %s\n' "ctr run --rm busybox true (runc-v2 shim, runc)" "$(ms "$c")"
    printf '%-58s median %s\n' "ctr run --rm busybox true (berth-shim, built-in runtime)" "$(ms "$cb")"
fi
printf '%-58s median %s\n' "berth run --rm busybox true (default bridge)" "$(ms "$bb")"
printf '%-58s median %s\n' "podman run --rm --network bridge (CNI, cni-podman0)" "$(ms "$pb")"
awk -v b="$b" -v p="$p" 'BEGIN { printf "ratio berth/podman: %.2f (goal <= 0.50)\n", b / p }'
awk -v b="$bb" -v p="$pb" 'BEGIN { printf "ratio berth/podman on the bridge: %.2f (goal <= 0.50)\n", b / p }'
if [ -n "$CTR" ]; then
    awk -v b="$b" -v c="$c" 'BEGIN { printf "ratio berth/ctr:    %.2f\n", b / c }'
    awk -v cb="$cb" -v c="$c" 'BEGIN { printf "ratio ctr with berth-shim / with runc-v2: %.2f\n", cb / c }'
fi
