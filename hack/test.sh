#!/usr/bin/env bash
# Runs berth's whole test suite: installs what is missing, checks formatting and lints,
# then runs unit, integration and root-only end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "hack/test.sh: the suite needs root (namespaces, mounts, cgroups, CNI); run it as root" >&2
    exit 1
fi

hack/deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo build (the e2e tests run the built binaries)"
cargo build --workspace --bins --locked

echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
exit "$status"
