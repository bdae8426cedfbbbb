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
