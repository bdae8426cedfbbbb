#!/usr/bin/env bash
# Installs every system package berth's build, demo and tests need.
# Idempotent and fast when everything is present: `apt-get update` runs only when a
# package is missing.
set -euo pipefail

packages=(
    # build
    protobuf-compiler pkg-config libseccomp-dev
    # fixtures: images are built from the host's static busybox
    busybox-static file zstd openssl apache2-utils
    # a real registry on loopback, and image tools to cross-check against
    docker-registry skopeo umoci
    # networking
    iproute2 nftables iptables containernetworking-plugins
    # reference runtimes and engines for differential and compatibility tests;
    # docker.io brings Debian's docker 20.10 CLI, a real Docker Engine API client
    runc containerd podman docker.io
    # buildah: the reference for the build differential (test/e2e/tests/build_buildah_diff.rs)
    # and hack/bench/build.sh
    buildah
    # a real grpc-go CRI client, built offline in GOPATH mode by test/e2e/go/build.sh
    golang-1.19-go golang-google-grpc-dev golang-google-protobuf-dev protoc-gen-go-1-3 protoc-gen-go-grpc
    # the SPDY library kubelet's and crictl's streaming client uses, for the CRI
    # streaming e2e tests' Go client (test/e2e/go/build-spdy.sh)
    golang-github-docker-spdystream-dev
    # a real Prometheus that scrapes berthd's metrics in test/e2e/tests/metrics.rs
    prometheus
    # raw archive uploads (curl over the socket, tars made by python3's tarfile) in
    # test/e2e/tests/docker_cp_hostile.rs
    curl python3
    # setfattr/getfattr: extended attributes kept by cp, export and commit
    # (test/e2e/tests/docker_cp_xattr.rs)
    attr
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "hack/deps.sh: missing packages: ${missing[*]}; run as root to install them" >&2
        exit 1
    fi
    echo "hack/deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # Services from these packages (registry, containerd) are started by the tests
    # themselves, on private sockets and loopback ports; none should start at install.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The Python Docker SDK, a real Docker Engine API client for the e2e tests.
if ! python3 -c 'import docker' >/dev/null 2>&1; then
    echo "hack/deps.sh: installing the Python docker SDK"
    python3 -m pip install -q --disable-pip-version-check docker
fi

# A real WebSocket client library for the CRI streaming e2e tests (test/e2e/py).
if ! python3 -c 'import websocket' >/dev/null 2>&1; then
    echo "hack/deps.sh: installing the Python websocket-client library"
    python3 -m pip install -q --disable-pip-version-check websocket-client
fi

# The Rust toolchain comes with the machine; fmt and clippy are components of it.
for tool in fmt clippy; do
    if ! cargo "$tool" --version >/dev/null 2>&1; then
        echo "hack/deps.sh: cargo $tool is missing; installing the rustup component"
        rustup component add "$( [ "$tool" = fmt ] && echo rustfmt || echo clippy )"
    fi
done
