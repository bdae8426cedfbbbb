#!/usr/bin/env bash
# Builds the grpc-go CRI client offline from Debian's Go packages, in GOPATH mode.
#   build.sh <path to the CRI v1 proto> <output binary>
# The proto is copied with its go_package pointing into our GOPATH; Debian's protoc-gen-go
# (1.3, package protoc-gen-go-1-3) generates messages and the gRPC client with
# plugins=grpc; grpc-go comes from golang-google-grpc-dev under /usr/share/gocode.
set -euo pipefail
proto=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=berth.test/cri/runtimev1
mkdir -p "$work/src/$pkg" "$work/src/berth.test/cri-client"
sed -e 's#^option go_package = .*#option go_package = "'"$pkg"'";#' "$proto" > "$work/src/$pkg/api.proto"
protoc -I "$work/src/$pkg" --go_out=plugins=grpc,paths=source_relative:"$work/src/$pkg" "$work/src/$pkg/api.proto"
cp "$here/cri-client/main.go" "$work/src/berth.test/cri-client/"
export GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOCACHE="${GOCACHE:-$work/cache}" GOFLAGS=-mod=mod
export PATH=/usr/lib/go-1.19/bin:$PATH
cd "$work/src/berth.test/cri-client"
GOFLAGS= go build -o "$out" .
