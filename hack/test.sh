#!/usr/bin/env bash
# Runs berth's whole test suite: installs what is missing, checks formatting and lints,
# then runs unit, integration and root-only end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "hack/test.sh: the suite needs root (namespaces, mounts, cgroups, CNI); run it as root" >&2
    exit 1
fi

before=$(mktemp)
log=$(mktemp)
trap 'rm -f "$log" "$before"' EXIT

hack/deps.sh

# What the host has before the run (cgroups, mounts, netns, veths, berth processes),
# taken once deps.sh has installed the tools it reads them with (ip): whatever the
# tests leave beyond it fails the run (see the end).
hack/leak-check.sh snapshot "$before"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo build (the e2e tests run the built binaries)"
cargo build --workspace --bins --locked

echo "== cargo test"
set +e
# --show-output: a passing test's "skipped: <reason>" (a host feature it lacks) is
# kept in the log, and listed at the end.
cargo test --workspace --locked --no-fail-fast -- --show-output 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# Tests remove what they make, also when they fail: anything new on the host now
# (a cgroup, a mount, a network namespace, a veth, a shim) fails the run.
echo
echo "== leak check"
leaks=0
hack/leak-check.sh compare "$before" || leaks=$?

# What tests skipped because this host lacks a feature, and why.
if grep -q '^skipped: ' "$log"; then
    echo
    echo "== parts of tests skipped on this host"
    grep '^skipped: ' "$log" | sort -u | sed 's/^/  /'
fi

# Each failing test's own output again, at the end where a reader of a long log
# looks first: its first 60 and last 60 lines (a berthd log in an error can be long).
if grep -q '^---- .* stdout ----$' "$log" && grep -q '^failures:$' "$log"; then
    echo
    echo "== failing tests' output"
    awk '
        /^failures:$/ { flush(); infail = 1; next }
        infail && /^---- .* stdout ----$/ { flush(); name = $0; n = 0; next }
        infail && /^(successes:|test result:)/ { flush(); infail = 0; next }
        infail && name != "" { lines[++n] = $0 }
        function flush(   i) {
            if (name == "") return
            print name
            for (i = 1; i <= n; i++) {
                if (n > 120 && i == 61) { printf "  [... %d lines ...]\n", n - 120; i = n - 60 }
                print "  " lines[i]
            }
            name = ""; n = 0
        }
        END { flush() }
    ' "$log"
fi

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
if [ "$status" -eq 0 ] && [ "$leaks" -ne 0 ]; then
    status=$leaks
fi
exit "$status"
