#!/usr/bin/env bash
# Regenerates the golden files from Garden's own Go client, as vendored in GATS 88423e0 (code.cloudfoundry.org/garden
# v0.0.0-20230829180649-7b7a13d99011): garden-json.golden is what Go's encoding/json writes for Garden's types,
# go-client-requests.golden the bytes the client writes on the wire for each kind of request. Needs Go >= 1.19 and the
# GATS archive, offline; the tests need neither (they read the files checked in).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
archive=${GATS_ARCHIVE:-/work/shared/gats/garden-integration-tests-88423e0.tar.gz}
src=$(mktemp -d /tmp/garden-test-golden.XXXXXX)
trap 'rm -rf "$src"' EXIT
tar -xzf "$archive" -C "$src"
gats=$(dirname "$(find "$src" -maxdepth 2 -name go.mod | head -1)")
for g in json wire; do mkdir -p "$gats/zz_$g" && cp "$here/gen/$g/main.go.txt" "$gats/zz_$g/main.go"; done
cd "$gats"
export GOFLAGS=-mod=vendor GOPROXY=off GOCACHE=${GOCACHE:-$src/cache}
go run ./zz_json > "$here/garden-json.golden"
go run ./zz_wire | grep -v '^#' > "$here/go-client-requests.golden"
echo "regenerated $here/garden-json.golden and $here/go-client-requests.golden"
