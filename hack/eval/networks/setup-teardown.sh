#!/usr/bin/env bash
# Per-container network setup + teardown time on this host: the CNI chain berth already
# drives for pods (bridge + host-local + firewall + portmap from /usr/lib/cni, with one
# published port) against netavark (Podman's stack, Debian's package) doing the same
# (bridge, one published port), interleaved, N rounds each; prints medians and the ratio.
# Needs root, containernetworking-plugins and netavark. Leaves nothing behind: its own
# bridges (bevalc0, bevaln0), netns, temp dirs and each tool's rules go at the end.
#
#   hack/eval/networks/setup-teardown.sh [rounds]
set -euo pipefail
N=${1:-20}
CNI=/usr/lib/cni
NV=/usr/lib/podman/netavark
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
[ -x "$NV" ] || { echo "netavark not installed (apt-get install netavark)" >&2; exit 1; }
work=$(mktemp -d /tmp/berth-neteval.XXXXXX)
ns=berth-neteval-$$
ip netns add "$ns"
cleanup() {
    ip netns del "$ns" 2>/dev/null || true
    ip link del bevalc0 2>/dev/null || true
    ip link del bevaln0 2>/dev/null || true
    rm -rf "$work"
    if [ "$nv_chains_before" = 0 ]; then
        iptables -D FORWARD -m comment --comment "netavark firewall plugin rules" -j NETAVARK_FORWARD 2>/dev/null || true
        iptables -X NETAVARK_FORWARD 2>/dev/null || true
        for c in PREROUTING OUTPUT; do
            iptables -t nat -D $c -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT 2>/dev/null || true
        done
        iptables -t nat -D POSTROUTING -j NETAVARK-HOSTPORT-MASQ 2>/dev/null || true
        for c in DNAT MASQ SETMARK; do
            iptables -t nat -F NETAVARK-HOSTPORT-$c 2>/dev/null || true
            iptables -t nat -X NETAVARK-HOSTPORT-$c 2>/dev/null || true
        done
    fi
}
nspath=/run/netns/$ns
# netavark leaves its base chains after the last teardown; remove them at the end only
# when they were not there before (another netavark user's are left alone).
nv_chains_before=$(iptables-save | grep -c NETAVARK || true)
trap cleanup EXIT

cat >"$work/cni.json" <<JSON
{"cniVersion":"1.0.0","name":"bevalc","plugins":[
 {"type":"bridge","bridge":"bevalc0","isGateway":true,"ipMasq":true,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":"10.231.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}],
          "dataDir":"$work/ipam"}},
 {"type":"firewall","backend":"iptables"},
 {"type":"portmap","snat":true,"capabilities":{"portMappings":true}}]}
JSON

# Runs the chain like berth's cni crate: each plugin gets its conf (with the network's
# name and version and the portMappings runtime config) and, after the first, the
# previous result. The confs are made once here, so no jq runs in the timed part.
types=(bridge firewall portmap)
confs=()
for i in 0 1 2; do
    confs+=("$(jq -c --argjson i "$i" '.plugins[$i] + {cniVersion:.cniVersion,name:.name}
        + {runtimeConfig:{portMappings:[{hostPort:18999,containerPort:80,protocol:"tcp"}]}}' "$work/cni.json")")
done
with_prev() { printf '%s,"prevResult":%s}' "${1%\}}" "$2"; }
plugin() { # cmd index stdin
    CNI_COMMAND=$1 CNI_CONTAINERID=evalc CNI_NETNS=$nspath CNI_IFNAME=eth0 CNI_PATH=$CNI \
        "$CNI/${types[$2]}" <<<"$3"
}
cni_add() {
    local prev
    prev=$(plugin ADD 0 "${confs[0]}")
    prev=$(plugin ADD 1 "$(with_prev "${confs[1]}" "$prev")")
    prev=$(plugin ADD 2 "$(with_prev "${confs[2]}" "$prev")")
    printf '%s' "$prev" >"$work/cni-result"
}
cni_del() {
    local prev
    prev=$(cat "$work/cni-result")
    for i in 2 1 0; do plugin DEL "$i" "$(with_prev "${confs[$i]}" "$prev")" >/dev/null; done
}

mkdir -p "$work/nv"
cat >"$work/nv.json" <<JSON
{"container_id":"evaln","container_name":"evaln",
 "networks":{"bevaln":{"interface_name":"eth0","static_ips":["10.232.0.2"]}},
 "network_info":{"bevaln":{"name":"bevaln","id":"$(printf '%064d' 1)","driver":"bridge",
   "network_interface":"bevaln0","subnets":[{"subnet":"10.232.0.0/24","gateway":"10.232.0.1"}],
   "ipv6_enabled":false,"internal":false,"dns_enabled":false}},
 "port_mappings":[{"host_ip":"","container_port":80,"host_port":18998,"range":1,"protocol":"tcp"}]}
JSON
nv() { "$NV" --config "$work/nv" "$1" "$nspath" <"$work/nv.json" >/dev/null; }

ms() { date +%s%N; }
cni_t=(); nv_t=()
for _ in $(seq "$N"); do
    t0=$(ms); cni_add; cni_del; t1=$(ms); cni_t+=($(((t1 - t0) / 1000000)))
    t0=$(ms); nv setup; nv teardown; t1=$(ms); nv_t+=($(((t1 - t0) / 1000000)))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mc=$(median "${cni_t[@]}"); mn=$(median "${nv_t[@]}")
echo "rounds: $N (setup+teardown of one container with one published port, ms)"
echo "cni (bridge+host-local+firewall+portmap): median ${mc} ms  all: ${cni_t[*]}"
echo "netavark 1.4 (bridge, iptables driver):   median ${mn} ms  all: ${nv_t[*]}"
awk -v a="$mc" -v b="$mn" 'BEGIN {printf "ratio cni/netavark: %.2f\n", a / b}'
