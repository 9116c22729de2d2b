#!/usr/bin/env bash
# Runs Garden's own integration suite (GATS) against gardend's Garden HTTP API (`make gats`).
#   scripts/gats.sh [ginkgo flags, e.g. -ginkgo.focus='Lifecycle']
# Starts a gardend of its own — the one `make build` left in ./out, else the installed one — on a temporary state dir,
# socket, mount dir, cgroup parent and network (like tests/Garden.Testing/Gardend.cs), serving Garden's API on a free
# loopback port (--garden-http 127.0.0.1:PORT); runs ../shared/gats/run HOST:PORT ROOTFS (which builds GATS once, offline,
# and skips the specs that need a registry image); then destroys what is left, stops gardend (SIGTERM: it removes its
# shared firewall chains) and removes the temporary dir. Prints GATS's summary line last and exits with its status.
# GATS's report, failures.txt and gardend.log are left in $GATS_OUT (default ./out/gats).
# Its debug endpoint (garden.garden-http.debug-address) on another free loopback port, passed as GATS reads it: GDN_DEBUG_PORT.
# Environment: GARDEN_ROOTFS (default /usr/local/share/garden-actors/rootfs), GATS_RUN (the run script), GATS_OUT.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${GATS_OUT:-$repo/out/gats}; mkdir -p "$out"; export GATS_OUT=$out
# a GATS binary built earlier (the run script's default place) saves building it again
[ -x "$out/gats-88423e0.test" ] || { [ -x /tmp/gats-out/gats-88423e0.test ] && cp /tmp/gats-out/gats-88423e0.test "$out/"; }
rootfs=${GARDEN_ROOTFS:-/usr/local/share/garden-actors/rootfs}
[ -d "$rootfs" ] || { echo "gats: no rootfs at $rootfs (make install prepares it, or set GARDEN_ROOTFS)" >&2; exit 1; }

run=${GATS_RUN:-}
for candidate in "$repo/../shared/gats/run" "$repo/../../shared/gats/run" /work/shared/gats/run; do
  [ -z "$run" ] && [ -x "$candidate" ] && run=$(cd "$(dirname "$candidate")" && pwd)/run
done
[ -n "$run" ] || { echo "gats: GATS's run script not found (../shared/gats/run; set GATS_RUN)" >&2; exit 1; }

# the built gardend, agent and CLI, else the installed ones
if [ -f "$repo/out/gardend/gardend.dll" ]; then
  gardend=(dotnet "$repo/out/gardend/gardend.dll"); agent=$repo/out/bin/garden-agent; cli=$repo/out/bin/garden
elif command -v gardend >/dev/null; then
  gardend=(gardend); agent=$(command -v garden-agent); cli=$(command -v garden)
else
  echo "gats: no gardend: run make build (or make install)" >&2; exit 1
fi
[ -x "$agent" ] && [ -x "$cli" ] || { echo "gats: garden-agent or garden missing beside gardend" >&2; exit 1; }

# everything of this run is named after one random id: /tmp/garden-gats-ID, cgroups garden-gats-ID, links gg??
dir=$(mktemp -d /tmp/garden-gats-XXXXXX); chmod 711 "$dir"   # container root (an unprivileged host uid) must reach its root
id=${dir##*-}
suffix=$(printf '%s' "$id" | tr 'A-Z' 'a-z' | tr -cd 'a-z0-9' | cut -c1-2); [ ${#suffix} -eq 2 ] || suffix=00
# GATS's rootfs: the default one and an `adduser` (its specs make users with `adduser -D NAME`; Debian's busybox-static,
# which the default rootfs is made of, lacks that applet). A copy, so the installed rootfs stays as it is.
cp -a "$rootfs" "$dir/rootfs"; rootfs=$dir/rootfs
cat > "$rootfs/usr/sbin/adduser" <<'ADDUSER'
#!/bin/sh
# adduser [-D] [-h HOME] [-s SHELL] [-u UID] NAME: busybox's, as far as Garden's suite uses it. The next free uid from 1000,
# a group of the same name and id, a home directory owned by the user.
home= shell=/bin/sh uid=
while [ $# -gt 1 ]; do
  case "$1" in -D) shift ;; -h) home=$2; shift 2 ;; -s) shell=$2; shift 2 ;; -u) uid=$2; shift 2 ;; *) shift ;; esac
done
name=$1
[ -n "$name" ] || { echo "usage: adduser [-D] [-h HOME] [-s SHELL] [-u UID] NAME" >&2; exit 1; }
if grep -q "^$name:" /etc/passwd; then echo "adduser: user '$name' in use" >&2; exit 1; fi
[ -n "$uid" ] || uid=$(awk -F: 'BEGIN { n = 1000 } { if ($3 >= n && $3 < 60000) n = $3 + 1 } END { print n }' /etc/passwd /etc/group)
[ -n "$home" ] || home=/home/$name
echo "$name:x:$uid:$uid:$name:$home:$shell" >> /etc/passwd
grep -q "^$name:" /etc/group || echo "$name:x:$uid:" >> /etc/group
mkdir -p "$home" && chown "$uid:$uid" "$home" && chmod 755 "$home"
ADDUSER
chmod 755 "$rootfs/usr/sbin/adduser"
# and Alpine's `operator` (uid 11, gid 0), which GATS's peas spec "when a username is provided" runs as
grep -q '^operator:' "$rootfs/etc/passwd" || echo 'operator:x:11:0:operator:/root:/sbin/nologin' >> "$rootfs/etc/passwd"
# GATS's TEST_ROOTFS is, upstream, an Alpine image, and its peas spec "runs a process in its own rootfs" reads the image's
# identity from /etc/os-release (the container and the pea use that same image there, so the spec checks the fixture, not
# which root the pea has: tests/Garden.EndToEnd.Tests/PeaTests.cs checks that with two different roots). The copy gets
# Alpine's NAME line, marked as this fixture's, beside the adduser and operator above.
[ -e "$rootfs/etc/os-release" ] || printf 'NAME="Alpine Linux"\nID=alpine\n# not Alpine: the busybox rootfs of Garden.Actors, dressed as GATS'"'"'s fixture (scripts/gats.sh)\n' > "$rootfs/etc/os-release"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
# gardend's debug endpoint (gdn's expvar, GET /debug/vars), which GATS's "Debug" spec reads at GDN_BIND_IP:GDN_DEBUG_PORT
debug_port=$(free_port); while [ "$debug_port" = "$port" ]; do debug_port=$(free_port); done
export GDN_DEBUG_PORT=$debug_port
sock=$dir/garden.sock
cat > "$dir/gardend.conf" <<EOF
garden {
  agent-binary = "$agent"
  default-rootfs = "$rootfs"
  mount-dir = "$dir/mounts"
  cgroup-parent = "garden-gats-$id"
  garden-http.debug-address = "127.0.0.1:$debug_port"
  network {
    prefix = "gg$suffix"
    pool = "10.251.0.0/22"
    port-pool { start = 56000, size = 1000 }
  }
}
EOF

pid=
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    for h in $("$cli" --socket "$sock" list 2>/dev/null); do "$cli" --socket "$sock" destroy "$h" >/dev/null 2>&1; done
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { echo "gats: gardend did not stop within 30 s; killing it" >&2; kill -KILL "$pid"; }
    wait "$pid" 2>/dev/null
  fi
  if grep -q " $dir/" /proc/self/mountinfo; then
    echo "gats: mounts under $dir are left (see $out/gardend.log); not removing it" >&2
  else
    rm -rf "$dir"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${gardend[@]}" --state-dir "$dir/state" --socket "$sock" --config "$dir/gardend.conf" --garden-http "127.0.0.1:$port" \
  > "$out/gardend.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  kill -0 "$pid" 2>/dev/null || { echo "gats: gardend exited at start:" >&2; tail -n 20 "$out/gardend.log" >&2; exit 1; }
  [ -S "$sock" ] && "$cli" --socket "$sock" ping >/dev/null 2>&1 && break
  sleep 0.1
done
"$cli" --socket "$sock" ping >/dev/null 2>&1 || { echo "gats: gardend did not answer within 30 s" >&2; exit 1; }

"$run" "127.0.0.1:$port" "$rootfs" "$@"
status=$?
exit $status
