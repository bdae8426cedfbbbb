#!/usr/bin/env bash
# Shim memory: N long-running containers (sleep) under berth-shim and N under
# containerd-shim-runc-v2, both through one private containerd 1.6
# (`ctr run -d --runtime io.containerd.berth.v1|io.containerd.runc.v2`).
# Per-container PSS of the shims (sum of Pss from /proc/PID/smaps_rollup / N) side by
# side, with the ratio. Goal: berth-shim <= 1/4 of containerd-shim-runc-v2.
#
# Then berth's own stack: a private berthd, idle and with N `berth run -d busybox sleep`
# containers: berthd's VmRSS (and PSS) and berth-shim's PSS per container there.
#
# Usage: hack/bench/shim-memory.sh [N]   (root; default 20)
set -euo pipefail

N=${1:-20}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/hack/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /tmp/berth-bench-shim.XXXXXX)
NS=bench-shim-$$
CTD_PID=""
BERTHD_PID=""

ctr_() { ctr --address "$WORK/c.sock" --namespace "$NS" "$@"; }

cleanup() {
    set +e
    if [ -n "$BERTHD_PID" ]; then
        for c in $("$BIN/berth" ps -aq 2>/dev/null); do "$BIN/berth" rm -f "$c" >/dev/null 2>&1; done
        kill "$BERTHD_PID" 2>/dev/null
        wait "$BERTHD_PID" 2>/dev/null
    fi
    if [ -n "$CTD_PID" ]; then
        for id in $(ctr_ task ls -q 2>/dev/null); do ctr_ task kill -s SIGKILL "$id" >/dev/null 2>&1; done
        sleep 1
        for id in $(ctr_ task ls -q 2>/dev/null); do ctr_ task rm -f "$id" >/dev/null 2>&1; done
        for id in $(ctr_ container ls -q 2>/dev/null); do ctr_ container rm "$id" >/dev/null 2>&1; done
        kill "$CTD_PID" 2>/dev/null; wait "$CTD_PID" 2>/dev/null
    fi
    for p in $(pgrep -f -- "-address $WORK/c.sock"); do kill -9 "$p" 2>/dev/null; done
    grep " $WORK/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$WORK" "/run/berth/runtime/$NS"
    remove_berth_leftovers
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "shim-memory.sh needs root (containerd, runc)" >&2; exit 1; }

echo "building berth-shim, berthd and berth (release)..." >&2
(cd "$ROOT" && cargo build --release -q --locked -p berth-shim -p berth-daemon -p berth-cli)
BIN=$CARGO_TARGET_DIR/release
mkdir -p "$WORK/bin"
ln -s "$CARGO_TARGET_DIR/release/berth-shim" "$WORK/bin/containerd-shim-berth-v1"

# A busybox OCI archive: one layer, config, manifest, index.json.
img="$WORK/img"; mkdir -p "$img/blobs/sha256" "$WORK/rootfs/bin"
cp /bin/busybox "$WORK/rootfs/bin/busybox"
for a in sh sleep; do ln -s busybox "$WORK/rootfs/bin/$a"; done
tar -C "$WORK/rootfs" -cf "$WORK/layer.tar" .
blob() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$img/blobs/sha256/$d"; echo "$d"; }
layer=$(blob "$WORK/layer.tar"); layer_size=$(stat -c %s "$WORK/layer.tar")
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$layer" > "$WORK/config.json"
config=$(blob "$WORK/config.json"); config_size=$(stat -c %s "$WORK/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config" "$config_size" "$layer" "$layer_size" > "$WORK/manifest.json"
manifest=$(blob "$WORK/manifest.json"); manifest_size=$(stat -c %s "$WORK/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
    "$manifest" "$manifest_size" > "$img/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$img/oci-layout"
tar -C "$img" -cf "$WORK/image.tar" .

cat > "$WORK/config.toml" <<TOML
version = 2
root = "$WORK/root"
state = "$WORK/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$WORK/c.sock"
[ttrpc]
  address = "$WORK/c.sock.ttrpc"
TOML
PATH="$WORK/bin:$PATH" containerd --config "$WORK/config.toml" >"$WORK/containerd.log" 2>&1 &
CTD_PID=$!
for _ in $(seq 100); do ctr_ version >/dev/null 2>&1 && break; sleep 0.1; done
ctr_ image import --base-name bench/busybox "$WORK/image.tar" >/dev/null
IMAGE=bench/busybox:latest

# Interleave the two runtimes while starting containers.
for i in $(seq "$N"); do
    ctr_ run -d --runtime io.containerd.berth.v1 "$IMAGE" "berth-$i" sleep 1000000 >/dev/null
    ctr_ run -d --runtime io.containerd.runc.v2 "$IMAGE" "runc-$i" sleep 1000000 >/dev/null
done
sleep 2

pss_sum() { # sum of Pss (kB) of processes whose command line matches $1 and address $2
    local total=0 n=0 p kb
    for p in $(pgrep -f -- "$1.*-address ${2:-$WORK/c.sock}"); do
        kb=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        total=$((total + kb)); n=$((n + 1))
    done
    echo "$total $n"
}
read -r berth_kb berth_n < <(pss_sum containerd-shim-berth-v1)
read -r runc_kb runc_n < <(pss_sum containerd-shim-runc-v2)
running=$(ctr_ task ls | grep -c RUNNING || true)

echo "containers running: $running (of $((2 * N)))"
printf '%-26s %8s %14s %16s\n' shim processes "PSS total" "PSS/container"
printf '%-26s %8s %11.2f MiB %12.3f MiB\n' berth-shim "$berth_n" "$(echo "$berth_kb/1024" | bc -l)" "$(echo "$berth_kb/1024/$N" | bc -l)"
printf '%-26s %8s %11.2f MiB %12.3f MiB\n' containerd-shim-runc-v2 "$runc_n" "$(echo "$runc_kb/1024" | bc -l)" "$(echo "$runc_kb/1024/$N" | bc -l)"
printf 'ratio berth/runc-v2: %.3f (goal <= 0.25)\n' "$(echo "$berth_kb/$runc_kb" | bc -l)"

# Stop containerd's containers first: shims of the same binary would share pages with
# the ones measured below and lower their PSS.
echo "stopping containerd's containers..." >&2
for id in $(ctr_ task ls -q); do ctr_ task kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
for _ in $(seq 100); do
    [ -z "$(pgrep -f -- "-address $WORK/c.sock")" ] && break
    for id in $(ctr_ task ls -q); do ctr_ task rm -f "$id" >/dev/null 2>&1 || true; done
    sleep 0.1
done

echo "starting a private berthd..." >&2
start_berthd "$BIN" "$WORK/berth" || exit 1
"$BIN/berth" import --change 'CMD ["/bin/sh"]' - busybox:latest <"$WORK/layer.tar" >/dev/null
sleep 1
rss() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
pss() { awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup"; }
idle_rss=$(rss "$BERTHD_PID") idle_pss=$(pss "$BERTHD_PID")
for i in $(seq "$N"); do
    "$BIN/berth" run -d busybox sleep 1000000 >/dev/null
done
sleep 2
busy_rss=$(rss "$BERTHD_PID") busy_pss=$(pss "$BERTHD_PID")
read -r shim_kb shim_n < <(pss_sum berth-shim "$WORK/berth/state")
running=$("$BIN/berth" ps -q | wc -l)

echo
echo "berthd: containers running: $running (of $N)"
printf '%-34s %10s %10s\n' berthd VmRSS PSS
printf '%-34s %6.1f MiB %6.1f MiB\n' "idle (image imported)" "$(echo "$idle_rss/1024" | bc -l)" "$(echo "$idle_pss/1024" | bc -l)"
printf '%-34s %6.1f MiB %6.1f MiB\n' "with $N containers" "$(echo "$busy_rss/1024" | bc -l)" "$(echo "$busy_pss/1024" | bc -l)"
printf 'berth-shim under berthd: %s processes, PSS %.2f MiB total, %.3f MiB per container\n' \
    "$shim_n" "$(echo "$shim_kb/1024" | bc -l)" "$(echo "$shim_kb/1024/$N" | bc -l)"
