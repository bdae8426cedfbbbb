#!/usr/bin/env bash
# RunPodSandbox and pod teardown: berth's CRI server vs containerd 1.6's built-in CRI,
# from one Rust CRI client, interleaved rounds, medians and ratios. Root only.
# (CreateContainer/StartContainer join once berthd's engine is wired into the CRI server.)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-30}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build -q --release -p berth-cri-server --example cri_bench
exec "$CARGO_TARGET_DIR/release/examples/cri_bench" bench "$N"
