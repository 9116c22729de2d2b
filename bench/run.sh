#!/usr/bin/env bash
# make bench: gardend and raw runc side by side, same rootfs, same run. Writes bench/results/latest.json.
# Then the create and parallel rows again with the warm pool on (garden.warm-pool.size = BENCH_POOL, default 10; off by
# default in gardend), reps back to back, the refill competing with them: bench/results/latest-create-parallel-pool10.json.
# BENCH_POOL=0 skips that pass; BENCH_ONLY=rows runs only those rows (and no pool pass unless BENCH_POOL is set).
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build bench/Garden.Bench/Garden.Bench.csproj -c Release --nologo -v:q -o out/bench >/dev/null
bench() {
  dotnet out/bench/Garden.Bench.dll "$PWD/out/gardend/gardend.dll" "${GARDEN_AGENT:-/usr/local/bin/garden-agent}" \
    "${GARDEN_ROOTFS:-/usr/local/share/garden-actors/rootfs}" bench/results/latest.json "${BENCH_REPS:-30}"
}
if [ -n "${BENCH_ONLY:-}" ]; then
  bench
else
  BENCH_POOL=0 bench
  pool="${BENCH_POOL:-10}"
  if [ "$pool" != 0 ]; then
    echo "== the create and parallel rows with the warm pool on (garden.warm-pool.size = $pool)"
    BENCH_POOL="$pool" BENCH_ONLY=create,parallel bench
  fi
fi
for d in /sys/fs/cgroup/*/garden-bench-runc /sys/fs/cgroup/*/garden-bench; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done
