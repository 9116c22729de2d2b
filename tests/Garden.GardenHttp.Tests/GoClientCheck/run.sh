#!/usr/bin/env bash
# Garden's own Go client (code.cloudfoundry.org/garden as vendored in GATS 88423e0) against the Garden HTTP layer over a
# scripted in-memory backend (harness.cs.txt), once over a unix socket and once over TCP: about 60 checks of what a
# Garden client sees — typed errors compared by value, Run/Attach/Wait, stdout/stderr, stdin and its end, TERM/KILL,
# TTY, files, every plain route. Manual: it needs Go >= 1.19 and the GATS archive (offline); `make test` does not run it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
archive=${GATS_ARCHIVE:-/work/shared/gats/garden-integration-tests-88423e0.tar.gz}
work=$(mktemp -d /tmp/garden-test-gocheck.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

tar -xzf "$archive" -C "$work"
gats=$(dirname "$(find "$work" -maxdepth 2 -name go.mod | head -1)")
mkdir -p "$gats/zz_check" && cp "$here/main.go.txt" "$gats/zz_check/main.go"
(cd "$gats" && GOFLAGS=-mod=vendor GOPROXY=off GOCACHE="$work/gocache" go build -o "$work/gocheck" ./zz_check)
sed "s|@HOST_PROJECT@|$repo/src/Host/Garden.Host.csproj|" "$here/harness.cs.txt" > "$work/harness.cs"
dotnet build "$work/harness.cs" -o "$work/harness" --nologo -v:q >/dev/null

status=0
for address in "$work/garden.sock" "127.0.0.1:0"; do
  dotnet "$work/harness/harness.dll" "$address" > "$work/harness.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q '^listening ' "$work/harness.log" && break; sleep 0.1; done
  listening=$(sed -n 's/^listening //p' "$work/harness.log")
  echo "== Garden's Go client against $listening"
  "$work/gocheck" "$listening" | grep -v '^PASS' || status=1
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
exit $status
