#!/usr/bin/env bash
# berth's main job on a fresh machine, offline: build berth, lay out a busybox image
# from the host's static busybox, and run a container from it that prints a greeting.
#
# Until berthd and `berth run` land, the demo drives berth-runtime (the OCI runtime)
# directly on an OCI bundle: real namespaces, pivot_root, cgroups and capabilities.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "hack/demo.sh: containers need root; run it as root" >&2
    exit 1
fi

hack/deps.sh
echo "== building berth-runtime"
cargo build --release --locked -p berth-runtime --bin berth-runtime
runtime="${CARGO_TARGET_DIR:-$PWD/target}/release/berth-runtime"

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
id="berth-demo-$$"
cleanup() {
    "$runtime" --root "$work/state" delete --force "$id" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== laying out a busybox image in $work/bundle"
mkdir -p "$work/bundle/rootfs/bin" "$work/bundle/rootfs/etc"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
"$work/bundle/rootfs/bin/busybox" --list | while read -r applet; do
    [ "$applet" = busybox ] || ln -s busybox "$work/bundle/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' \
    > "$work/bundle/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$work/bundle/rootfs/etc/group"

(cd "$work/bundle" && "$runtime" spec)
# The default spec runs `sh` with a terminal; run the greeting instead.
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["/bin/sh", "-c",
    'echo "Hello from berth: $(hostname), pid $$, uid $(id -u), $(uname -s) $(uname -r)"']
spec["hostname"] = "berth-demo"
json.dump(spec, open(path, "w"), indent=2)
PY

echo "== running the container"
status=0
"$runtime" --root "$work/state" run --bundle "$work/bundle" "$id" || status=$?
echo "== container exited with status $status"
exit "$status"
