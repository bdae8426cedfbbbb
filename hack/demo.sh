#!/usr/bin/env bash
# berth's main job on a fresh machine, offline: build berth, start a private berthd,
# import a busybox image made from the host's static busybox, run a container from it
# with `berth run` that prints a greeting, and stop everything again.
#
# The daemon, its root and state live in a temp dir; nothing is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

if [ "$(id -u)" -ne 0 ]; then
    echo "hack/demo.sh: containers need root; run it as root" >&2
    exit 1
fi

hack/deps.sh
echo "== building berthd, berth-shim and berth (release)"
cargo build --release --locked -p berth-daemon -p berth-shim -p berth-cli
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
BERTHD_PID=""
cleanup() {
    set +e
    if [ -n "$BERTHD_PID" ]; then
        for c in $("$bin/berth" ps -aq 2>/dev/null); do "$bin/berth" rm -f "$c" >/dev/null 2>&1; done
        kill "$BERTHD_PID" 2>/dev/null
        wait "$BERTHD_PID" 2>/dev/null
    fi
    grep " $work/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$work"
    remove_berth_leftovers
}
trap cleanup EXIT

echo "== starting berthd (root $work/root)"
start_berthd "$bin" "$work" || exit 1
"$bin/berth" version

echo "== importing a busybox image built from the host's /bin/busybox"
busybox_rootfs_tar "$work/rootfs" "$work/busybox.tar"
"$bin/berth" import --change 'CMD ["/bin/sh"]' - busybox:latest <"$work/busybox.tar"
"$bin/berth" images

echo "== berth run --rm --hostname berth-demo busybox …"
status=0
"$bin/berth" run --rm --hostname berth-demo busybox \
    sh -c 'echo "Hello from berth: $(hostname), pid $$, uid $(id -u), $(uname -s) $(uname -r)"' \
    || status=$?
echo "== container exited with status $status"
exit "$status"
