#!/usr/bin/env bash
# make bench: gardend and raw runc side by side, same rootfs, same run. Writes bench/results/latest.json.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build bench/Garden.Bench/Garden.Bench.csproj -c Release --nologo -v:q -o out/bench >/dev/null
dotnet out/bench/Garden.Bench.dll "$PWD/out/gardend/gardend.dll" "${GARDEN_AGENT:-/usr/local/bin/garden-agent}" \
  "${GARDEN_ROOTFS:-/usr/local/share/garden-actors/rootfs}" bench/results/latest.json "${BENCH_REPS:-30}"
for d in /sys/fs/cgroup/*/garden-bench-runc /sys/fs/cgroup/*/garden-bench; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done
