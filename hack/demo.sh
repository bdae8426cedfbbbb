#!/usr/bin/env bash
# berth's main job on a fresh machine, offline: build berth, start a private berthd,
# import a busybox image made from the host's static busybox, run a container from it
# with `berth run` that prints a greeting, and stop everything again.
#
# The daemon, its root and state live in a temp dir; nothing is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "hack/demo.sh: containers need root; run it as root" >&2
    exit 1
fi

hack/deps.sh
echo "== building berthd, berth-shim and berth (release)"
cargo build --release --locked -p berth-daemon -p berth-shim -p berth-cli
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
export DOCKER_HOST="unix://$work/state/docker.sock"
berthd_pid=""
cleanup() {
    set +e
    if [ -n "$berthd_pid" ]; then
        for c in $("$bin/berth" ps -aq 2>/dev/null); do "$bin/berth" rm -f "$c" >/dev/null 2>&1; done
        kill "$berthd_pid" 2>/dev/null
        wait "$berthd_pid" 2>/dev/null
    fi
    grep " $work/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$work"
}
trap cleanup EXIT

echo "== starting berthd (root $work/root)"
"$bin/berthd" --root "$work/root" --state "$work/state" >"$work/berthd.log" 2>&1 &
berthd_pid=$!
for _ in $(seq 200); do
    [ -S "$work/state/docker.sock" ] && break
    if ! kill -0 "$berthd_pid" 2>/dev/null; then
        echo "hack/demo.sh: berthd exited:" >&2
        cat "$work/berthd.log" >&2
        exit 1
    fi
    sleep 0.05
done
"$bin/berth" version

echo "== importing a busybox image built from the host's /bin/busybox"
rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
"$rootfs/bin/busybox" --list | while read -r applet; do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' \
    > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
tar -C "$rootfs" -cf - . | "$bin/berth" import --change 'CMD ["/bin/sh"]' - busybox:latest
"$bin/berth" images

echo "== berth run --rm --hostname berth-demo busybox …"
status=0
"$bin/berth" run --rm --hostname berth-demo busybox \
    sh -c 'echo "Hello from berth: $(hostname), pid $$, uid $(id -u), $(uname -s) $(uname -r)"' \
    || status=$?
echo "== container exited with status $status"
exit "$status"
