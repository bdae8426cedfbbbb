#!/usr/bin/env bash
# Builds spdy-client offline in GOPATH mode from Debian's spdystream
# (golang-github-docker-spdystream-dev under /usr/share/gocode).
#   build-spdy.sh <output binary>
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/berth.test/spdy-client"
cp "$here/spdy-client/main.go" "$work/src/berth.test/spdy-client/"
export GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOCACHE="${GOCACHE:-$work/cache}" GOFLAGS=
export PATH=/usr/lib/go-1.19/bin:$PATH
cd "$work/src/berth.test/spdy-client"
go build -o "$out" .
