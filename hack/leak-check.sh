#!/usr/bin/env bash
# What the test suite may leave on the host, before and after a run:
#
#   hack/leak-check.sh list               # print what is there now, one "kind: item" a line
#   hack/leak-check.sh snapshot FILE      # save that list
#   hack/leak-check.sh compare FILE       # print what is there now and not in FILE;
#                                         # exit 1 when there is any
#
# Looked at: cgroups (every v1 hierarchy and the v2 one, down to depth 3) whose path
# names berth or a CRI test's pod parent (crie2e, crievents, cristats); mounts under
# /tmp and /var/tmp, and under /run where the path names berth; network namespaces in
# /run/netns and /var/run/netns; veth interfaces; berthd and shim processes.
# hack/test.sh takes a snapshot first, so what a dev machine already had is not blamed
# on the run.
set -euo pipefail

CGROUP_NAMES='berth|crie2e|crievents|cristats'

cgroups() {
    # Mount points of cgroup and cgroup2 filesystems (field 5; type after " - ").
    awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i+1) == "cgroup" || $(i+1) == "cgroup2") print $5; break } }' \
        /proc/self/mountinfo | sort -u | while read -r mnt; do
        find "$mnt" -mindepth 1 -maxdepth 3 -type d -printf '%P\n' 2>/dev/null |
            grep -E "$CGROUP_NAMES" | sed "s|^|cgroup: $mnt/|" || true
    done
}

mounts() {
    awk '{ print $5 }' /proc/self/mountinfo |
        grep -E '^(/tmp|/var/tmp)/|^/run/.*berth' | sed 's/^/mount: /' || true
}

netns() {
    local dirs=() d
    for d in /run/netns /var/run/netns; do
        [ -d "$d" ] && dirs+=("$(readlink -f "$d")")
    done
    [ ${#dirs[@]} -eq 0 ] && return 0
    printf '%s\n' "${dirs[@]}" | sort -u | while read -r d; do
        find "$d" -mindepth 1 -maxdepth 1 -printf "netns: $d/%P\n"
    done
}

veths() {
    ip -o link show type veth 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print "veth: " $2 }' || true
}

processes() {
    local p comm
    for p in /proc/[0-9]*; do
        comm=$(cat "$p/comm" 2>/dev/null) || continue
        case "$comm" in
        berthd | berth-shim | containerd-shim*)
            echo "process: ${p#/proc/} $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null | cut -c1-200)"
            ;;
        esac
    done
}

list() {
    { cgroups; mounts; netns; veths; processes; } | sort -u
}

case "${1:-}" in
list)
    list
    ;;
snapshot)
    list >"${2:?usage: $0 snapshot FILE}"
    ;;
compare)
    before=${2:?usage: $0 compare FILE}
    left=$(list | comm -13 "$before" -)
    if [ -n "$left" ]; then
        # Teardown that is merely slow (a shim exiting after its container) is not a leak.
        sleep 2
        left=$(list | comm -13 "$before" -)
    fi
    if [ -n "$left" ]; then
        echo "leak check: the run left behind $(echo "$left" | wc -l) thing(s) that were not there before it:"
        echo "$left" | sed 's/^/  /'
        exit 1
    fi
    echo "leak check: nothing left behind (cgroups, mounts, network namespaces, veths, berth processes)"
    ;;
*)
    echo "usage: $0 list | snapshot FILE | compare FILE" >&2
    exit 2
    ;;
esac
