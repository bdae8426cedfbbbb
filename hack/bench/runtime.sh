#!/usr/bin/env bash
# berth-runtime run vs runc run on the same bundle running /bin/true.
# Interleaved runs, medians and the ratio. Root only.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-30}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build -q --release -p berth-runtime
BERTH="$CARGO_TARGET_DIR/release/berth-runtime"
RUNC=${RUNC:-$(command -v runc)}

work=$(mktemp -d /tmp/berth-bench-runtime.XXXXXX)
trap 'rm -rf "$work"' EXIT
bundle="$work/bundle"
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/etc" "$bundle/rootfs/proc" "$bundle/rootfs/dev" "$bundle/rootfs/sys"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for a in sh true; do ln -s busybox "$bundle/rootfs/bin/$a"; done
# runc's default spec with /bin/true, no terminal, and rlimits runc can apply here.
(cd "$bundle" && "$RUNC" spec)
python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
json.dump(c, open(p, "w"), indent=1)
PY

ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; e=$(date +%s%N); echo $(( (e - s) / 1000 )); }
berth_t=(); runc_t=()
for i in $(seq 1 "$N"); do
  berth_t+=("$(ms "$BERTH" --root "$work/berth-state" run --bundle "$bundle" "bench-b-$i")")
  runc_t+=("$(ms "$RUNC" --root "$work/runc-state" run --bundle "$bundle" "bench-r-$i")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
b=$(median "${berth_t[@]}"); r=$(median "${runc_t[@]}")
printf 'runs: %d interleaved\n' "$N"
printf 'berth-runtime run /bin/true: median %d.%03d ms\n' $((b / 1000)) $((b % 1000))
printf 'runc run /bin/true:          median %d.%03d ms\n' $((r / 1000)) $((r % 1000))
awk -v b="$b" -v r="$r" 'BEGIN { printf "ratio berth/runc: %.2f (goal <= 0.30)\n", b / r }'
