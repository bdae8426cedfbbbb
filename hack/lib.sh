# Shell helpers shared by hack/demo.sh and the benchmarks under hack/bench/. Source it.

# busybox_rootfs_tar DIR TAR: the host's static busybox with its applet links and a
# minimal /etc/passwd and /etc/group, laid out in DIR and packed into TAR.
busybox_rootfs_tar() {
    local rootfs=$1 tar=$2
    mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
    cp /bin/busybox "$rootfs/bin/busybox"
    "$rootfs/bin/busybox" --list | while read -r applet; do
        [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' \
        >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    tar -C "$rootfs" -cf "$tar" .
}

# start_berthd BIN DIR: a private berthd (binaries in BIN) with its root, state and log
# under DIR. Sets BERTHD_PID and exports DOCKER_HOST; waits until the Docker API socket
# exists, and fails with berthd's log if berthd exits first.
start_berthd() {
    local bin=$1 dir=$2
    mkdir -p "$dir"
    export DOCKER_HOST="unix://$dir/state/docker.sock"
    # What remove_berth_leftovers needs: this berthd's root (its nft table is named
    # after it) and whether the default bridge was there before it.
    BERTH_ROOT_DIR="$dir/root"
    BERTH_BR0_BEFORE=1
    ip link show berth-br0 >/dev/null 2>&1 || BERTH_BR0_BEFORE=0
    "$bin/berthd" --root "$dir/root" --state "$dir/state" >"$dir/berthd.log" 2>&1 &
    BERTHD_PID=$!
    for _ in $(seq 200); do
        [ -S "$dir/state/docker.sock" ] && return 0
        if ! kill -0 "$BERTHD_PID" 2>/dev/null; then
            echo "berthd exited:" >&2
            cat "$dir/berthd.log" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "berthd did not open $dir/state/docker.sock within 10 s" >&2
    return 1
}

# remove_berth_cgroup_parent: rmdir the /berth parent cgroup a private berthd put its
# containers under, in every hierarchy, once empty (a berthd of the host's own
# recreates it when it needs it). For the cleanup of scripts that start a berthd.
remove_berth_cgroup_parent() {
    local d
    for d in /sys/fs/cgroup/berth /sys/fs/cgroup/*/berth; do
        if [ -d "$d" ]; then rmdir "$d" 2>/dev/null || true; fi
    done
}

# remove_berth_leftovers: what a private berthd leaves on the host once it has gone:
# the /berth parent cgroups (once empty), and the default bridge (berth-br0) and the
# engine's nft table if this script's berthd made them (as dockerd leaves docker0, a
# berthd keeps its bridge when it stops). For the cleanup of scripts that start one.
remove_berth_leftovers() {
    remove_berth_cgroup_parent
    [ -n "${BERTH_ROOT_DIR:-}" ] || return 0
    if [ "${BERTH_BR0_BEFORE:-1}" = 0 ]; then
        ip link del berth-br0 2>/dev/null || true
    fi
    local table
    # The name engine/src/networks/firewall.rs gives it: FNV-1a of the root path.
    table=$(python3 -c '
import sys
h = 0xcbf29ce484222325
for b in sys.argv[1].encode():
    h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
print("berth_%012x" % (h & 0xFFFFFFFFFFFF))' "$BERTH_ROOT_DIR")
    nft delete table inet "$table" 2>/dev/null || true
}

# A private podman for the benchmarks: root, runroot, configs and CNI config all under
# $WORK/podman (WORK is the calling script's temp dir), so nothing of the host's podman
# is read or written. podman_ runs podman there.
podman_() {
    CONTAINERS_CONF="$WORK/podman/containers.conf" \
        CONTAINERS_STORAGE_CONF="$WORK/podman/storage.conf" \
        CONTAINERS_REGISTRIES_CONF="$WORK/podman/registries.conf" \
        podman --root "$WORK/podman/root" --runroot "$WORK/podman/runroot" "$@"
}

# Image copies (import, save) write containers/image's blob-info cache under
# /var/lib/containers/cache, which no option moves: run them in a private mount
# namespace with a tmpfs there (or over /var/lib when that directory does not exist).
podman_copy() {
    unshare --mount --propagation private -- env \
        CONTAINERS_CONF="$WORK/podman/containers.conf" \
        CONTAINERS_STORAGE_CONF="$WORK/podman/storage.conf" \
        CONTAINERS_REGISTRIES_CONF="$WORK/podman/registries.conf" \
        sh -c 'if [ -d /var/lib/containers ]; then mount -t tmpfs tmpfs /var/lib/containers
               else mount -t tmpfs tmpfs /var/lib; fi && exec podman "$@"' \
        sh --root "$WORK/podman/root" --runroot "$WORK/podman/runroot" "$@"
}

# podman_net_ ARGS: podman_ for containers on Podman's default network. Its CNI
# backend keeps its result cache and host-local leases under /var/lib/cni, which no
# option moves: each call runs in a private mount namespace with a tmpfs there (podman's
# cleanup of the container, a child of this call, runs in it too). Sets
# PODMAN_BRIDGE_BEFORE on first use so podman_cleanup removes the bridge (cni-podman0)
# only when podman made it here.
podman_net_() {
    if [ -z "${PODMAN_BRIDGE_BEFORE:-}" ]; then
        PODMAN_BRIDGE_BEFORE=1
        ip link show cni-podman0 >/dev/null 2>&1 || PODMAN_BRIDGE_BEFORE=0
    fi
    unshare --mount --propagation private -- env \
        CONTAINERS_CONF="$WORK/podman/containers.conf" \
        CONTAINERS_STORAGE_CONF="$WORK/podman/storage.conf" \
        CONTAINERS_REGISTRIES_CONF="$WORK/podman/registries.conf" \
        sh -c 'mkdir -p /var/lib/cni && mount -t tmpfs tmpfs /var/lib/cni && exec podman "$@"' \
        sh --root "$WORK/podman/root" --runroot "$WORK/podman/runroot" "$@"
}

# podman_setup TAR: writes the private podman's configs (cgroupfs, runc, file locks and
# events, no network) and imports TAR as localhost/busybox:latest.
podman_setup() {
    echo "setting up podman (private root, runroot and containers.conf)..." >&2
    mkdir -p "$WORK/podman"
    # Hard RLIMIT_NOFILE here is 20000, below podman's default ulimits: pass explicit ones.
    cat >"$WORK/podman/containers.conf" <<TOML
[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
# Per-container locks as files under tmp_dir, not in the host-wide /dev/shm/libpod_lock.
lock_type = "file"
events_logger = "file"
events_logfile_path = "$WORK/podman/events.log"
tmp_dir = "$WORK/podman/tmp"
volume_path = "$WORK/podman/volumes"
static_dir = "$WORK/podman/static"
[network]
network_backend = "cni"
network_config_dir = "$WORK/podman/net"
TOML
    cat >"$WORK/podman/storage.conf" <<TOML
[storage]
driver = "overlay"
graphroot = "$WORK/podman/root"
runroot = "$WORK/podman/runroot"
TOML
    echo 'unqualified-search-registries = []' >"$WORK/podman/registries.conf"
    podman_copy import -q --change 'CMD ["/bin/sh"]' "$1" localhost/busybox:latest >/dev/null
}

# podman_cleanup: removes the private podman's containers (when it was set up), then
# unmounts whatever is left under $WORK and removes it; podman's cleanup processes may
# still hold its overlay mount for a moment, hence the retries.
podman_cleanup() {
    if [ -f "$WORK/podman/containers.conf" ]; then
        podman_ rm -af -t 0 >/dev/null 2>&1
    fi
    if [ "${PODMAN_BRIDGE_BEFORE:-1}" = 0 ]; then
        ip link del cni-podman0 2>/dev/null || true
    fi
    for _ in 1 2 3; do
        grep " $WORK/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
        rm -rf "$WORK" 2>/dev/null && break
        sleep 0.5
    done
}
