#!/usr/bin/env bash
# Build speed: a 7-step Dockerfile FROM busybox (ENV, two COPY, two RUN, WORKDIR, CMD)
# built cold (the base present, no cache: --no-cache) and fully cached, with berth
# (a private berthd) and with BuildKit (Debian's dockerd, private data root and
# socket, DOCKER_BUILDKIT=1); buildah too when it is installed. RUN steps use
# --network none in each. Interleaved rounds after one warm-up each; medians and
# ratios (goal: berth faster than BuildKit on both).
#
# Usage: [PROFILE=debug] hack/bench/build.sh [ROUNDS]   (root; default 20)
# Everything lives in a temp dir removed on exit; dockerd runs with no bridge and no
# iptables rules, so nothing global is configured.
set -euo pipefail

N=${1:-20}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/hack/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /tmp/berth-bench-build.XXXXXX)
BERTHD_PID="" DOCKERD_PID=""

[ "$(id -u)" = 0 ] || { echo "build.sh needs root (containers)" >&2; exit 1; }

cleanup() {
    set +e
    if [ -n "$BERTHD_PID" ]; then
        for c in $("$BIN/berth" ps -aq 2>/dev/null); do "$BIN/berth" rm -f "$c" >/dev/null 2>&1; done
        kill "$BERTHD_PID" 2>/dev/null
        wait "$BERTHD_PID" 2>/dev/null
    fi
    if [ -n "$DOCKERD_PID" ]; then
        kill "$DOCKERD_PID" 2>/dev/null
        wait "$DOCKERD_PID" 2>/dev/null
    fi
    if command -v buildah >/dev/null; then
        buildah --root "$WORK/buildah" --runroot "$WORK/buildah-run" rm --all >/dev/null 2>&1
    fi
    grep -o " $WORK[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
    remove_berth_leftovers
    # The cgroups dockerd's BuildKit made (/docker/buildkit), once empty.
    local d
    for d in /sys/fs/cgroup/*/docker/buildkit /sys/fs/cgroup/docker/buildkit \
        /sys/fs/cgroup/*/docker /sys/fs/cgroup/docker; do
        if [ -d "$d" ]; then rmdir "$d" 2>/dev/null || true; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

PROFILE=${PROFILE:-release}
echo "building berthd, berth-shim and berth ($PROFILE)..." >&2
(cd "$ROOT" && cargo build --profile "$([ "$PROFILE" = debug ] && echo dev || echo release)" -q --locked -p berth-daemon -p berth-shim -p berth-cli)
BIN=$CARGO_TARGET_DIR/$PROFILE

busybox_rootfs_tar "$WORK/rootfs" "$WORK/busybox.tar"
CTX=$WORK/ctx
mkdir -p "$CTX"
head -c 100000 /dev/urandom | base64 >"$CTX/a.txt"
head -c 100000 /dev/urandom | base64 >"$CTX/b.txt"
cat >"$CTX/Dockerfile" <<'DOCKERFILE'
FROM busybox
ENV APP=/app
COPY a.txt /app/
COPY b.txt /app/
RUN cat /app/a.txt /app/b.txt > /app/c
RUN echo done > /app/d
WORKDIR /app
CMD ["cat", "c"]
DOCKERFILE

echo "starting a private berthd..." >&2
start_berthd "$BIN" "$WORK/berth" || exit 1
BERTH_HOST=$DOCKER_HOST
"$BIN/berth" import - busybox:latest <"$WORK/busybox.tar" >/dev/null

echo "starting a private dockerd..." >&2
DOCKER_SOCK=$WORK/docker.sock
dockerd --data-root "$WORK/docker" --exec-root "$WORK/docker-exec" --pidfile "$WORK/docker.pid" \
    -H "unix://$DOCKER_SOCK" --bridge none --iptables=false --ip6tables=false \
    >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 200); do [ -S "$DOCKER_SOCK" ] && break; sleep 0.05; done
# Debian's 20.10 client has BuildKit built in (the 28.x one wants buildx).
dk() { DOCKER_HOST="unix://$DOCKER_SOCK" DOCKER_BUILDKIT=1 /usr/bin/docker "$@"; }
for _ in $(seq 100); do dk version >/dev/null 2>&1 && break; sleep 0.1; done
dk import "$WORK/busybox.tar" busybox:latest >/dev/null

BH=""
if command -v buildah >/dev/null; then
    BH="buildah --root $WORK/buildah --runroot $WORK/buildah-run --storage-driver overlay"
    # buildah has no import: a scratch container with the rootfs tar added (ADD
    # semantics extract it), committed under the name the Dockerfile's FROM resolves to.
    { c=$($BH from scratch) && $BH add "$c" "$WORK/busybox.tar" / \
        && $BH commit -q "$c" localhost/busybox:latest && $BH rm "$c"; } >/dev/null 2>&1 \
        || { echo "buildah cannot import the base; leaving buildah out" >&2; BH=""; }
else
    echo "buildah is not installed: berth vs BuildKit only" >&2
fi

us() {
    local s e
    s=$(date +%s%N)
    "$@" >/dev/null 2>"$WORK/last.err" || { echo "failed: $*" >&2; cat "$WORK/last.err" >&2; exit 1; }
    e=$(date +%s%N)
    echo $(((e - s) / 1000))
}
berth_build() { DOCKER_HOST=$BERTH_HOST us "$BIN/berth" build --network none -t bench "$@" "$CTX"; }
kit_build() { us dk build --network none -t bench "$@" "$CTX"; }
# chroot isolation allows only the host's network (its RUN steps need no network).
buildah_build() { us $BH bud --isolation chroot --network host --pull=never -t bench "$@" "$CTX"; }

echo "warm-up..." >&2
berth_build >/dev/null; kit_build >/dev/null
[ -z "$BH" ] || buildah_build --layers >/dev/null

bc=() bw=() kc=() kw=() hc=() hw=()
echo "timing $N interleaved rounds..." >&2
for _ in $(seq "$N"); do
    bc+=("$(berth_build --no-cache)"); kc+=("$(kit_build --no-cache)")
    bw+=("$(berth_build)"); kw+=("$(kit_build)")
    if [ -n "$BH" ]; then
        hc+=("$(buildah_build --layers --no-cache)"); hw+=("$(buildah_build --layers)")
    fi
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
ms() { printf '%d.%01d ms' $(($1 / 1000)) $((($1 % 1000) / 100)); }
Bc=$(median "${bc[@]}") Bw=$(median "${bw[@]}") Kc=$(median "${kc[@]}") Kw=$(median "${kw[@]}")
printf 'rounds: %d interleaved (after one warm-up each), profile %s\n' "$N" "$PROFILE"
printf '%-34s cold %-12s cached %s\n' "berth build" "$(ms "$Bc")" "$(ms "$Bw")"
printf '%-34s cold %-12s cached %s\n' "docker build (BuildKit)" "$(ms "$Kc")" "$(ms "$Kw")"
if [ -n "$BH" ]; then
    Hc=$(median "${hc[@]}") Hw=$(median "${hw[@]}")
    printf '%-34s cold %-12s cached %s\n' "buildah bud" "$(ms "$Hc")" "$(ms "$Hw")"
    awk -v b="$Bc" -v h="$Hc" -v bw="$Bw" -v hw="$Hw" 'BEGIN { printf "ratio berth/buildah: cold %.2f, cached %.2f\n", b / h, bw / hw }'
fi
awk -v b="$Bc" -v k="$Kc" -v bw="$Bw" -v kw="$Kw" 'BEGIN { printf "ratio berth/BuildKit: cold %.2f, cached %.2f (goal < 1 on both)\n", b / k, bw / kw }'
