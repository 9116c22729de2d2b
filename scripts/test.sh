#!/usr/bin/env bash
# Builds once, runs every test project (in parallel), checks the host for leftovers of the tests,
# and ends with one line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
log=$(mktemp /tmp/garden-test-log.XXXXXX)
status=0

# What the tests may have left on the host: they keep everything under /tmp/garden-test-* and cgroups under
# garden-test-*; networks are named with the prefixes te?? (test daemons) and tl?? (Linux tests), their netns teo*.
# Anything listed after the run and not before it is a leak of this run (a killed earlier run's leftovers are
# reported, not counted: scripts/clean-test-leftovers.sh removes them).
leftovers() {
  grep ' /tmp/garden-test-' /proc/self/mountinfo | awk '{print "mount " $5}'
  runc list 2>/dev/null | grep '/tmp/garden-test-' | awk '{print "runc-container " $1}'
  cat /sys/block/loop*/loop/backing_file 2>/dev/null | grep '/tmp/garden-test-' | sed 's/^/loop-device /'
  find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d -name 'garden-test-*' 2>/dev/null | sed 's/^/cgroup /'
  ls /sys/class/net | grep -E '^t[el][0-9a-z]{2}' | sed 's/^/network-link /'
  ls /run/netns 2>/dev/null | grep -E '^t[el]' | sed 's/^/netns /'
  iptables-save 2>/dev/null | grep -E '(^:| -j | -[io] )t[el][0-9a-z]{2}' | sed 's/ \[[0-9:]*\]$//; s/^/iptables /'
  ip6tables-save 2>/dev/null | grep -E '(^:| -j | -[io] )t[el][0-9a-z]{2}' | sed 's/ \[[0-9:]*\]$//; s/^/ip6tables /'
  # A user namespace holder (garden-agent ns-holder) lives only while its gardend creates a container.
  pgrep -f 'garden-agent ns-holder( [0-9]+)?$' | sed 's/^/userns-holder /'
}
before=$(mktemp /tmp/garden-test-before.XXXXXX)
leftovers | sort > "$before"

dotnet build Garden.Actors.sln -c Release --nologo -v:q 2>&1 | tail -n 20 || status=1

# every test daemon's log (tests/Garden.Testing/Gardend.cs): after a failed run, gardend's own unexpected errors are
# printed below (a client sees only "Exception was thrown by handler"; the why is in the daemon's log). A
# GARDEN_TEST_LOG_DIR given keeps the logs there; else they go with the run.
keep_logs=${GARDEN_TEST_LOG_DIR:-}
daemon_logs=${keep_logs:-$(mktemp -d /tmp/garden-daemon-logs.XXXXXX)}
mkdir -p "$daemon_logs"
export GARDEN_TEST_LOG_DIR=$daemon_logs

if [ $status -eq 0 ]; then
  dotnet test Garden.Actors.sln -c Release --no-build --nologo \
    --blame-hang-timeout 8m --logger "console;verbosity=minimal" 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

passed=$(grep -Eo 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -Eo 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')

after=$(mktemp /tmp/garden-test-after.XXXXXX)
leftovers | sort > "$after"
leaks=$(comm -13 "$before" "$after")
old=$(comm -12 "$before" "$after" | wc -l)
[ "$old" -gt 0 ] && echo "note: $old leftovers of an earlier run were there before this one (scripts/clean-test-leftovers.sh)"
if [ -n "$leaks" ]; then
  echo "leak check FAILED: $(echo "$leaks" | awk '{print $1}' | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}')"
  echo "$leaks" | head -n 30
  failed=$((failed + 1)); status=1
else
  echo "leak check passed: no mounts, loop devices, runc containers, cgroups, network links, namespaces, iptables or ip6tables rules or user namespace holders of the tests are left"
  passed=$((passed + 1))
fi
rm -f "$before" "$after"
rm -f "$log"
if [ "$failed" -gt 0 ] || [ $status -ne 0 ]; then
  # gardend's own unexpected errors (not the Akka.Remote endpoint's "Disassociated" lines of clients going away, nor
  # the start failures tests provoke on purpose, which the host logs as Microsoft.Extensions.Hosting's)
  pattern='Error when executing service method|fail: Garden\.|crit: |Unhandled exception'
  for f in $(grep -l -E "$pattern" "$daemon_logs"/*.log 2>/dev/null | head -n 5); do
    echo "---- unexpected errors in the log of test daemon $(basename "$f" .log) ----"
    grep -E -A 25 "$pattern" "$f" | head -n 80
  done
fi
[ -n "$keep_logs" ] || rm -rf "$daemon_logs"
[ "$failed" -gt 0 ] && status=1
[ "$passed" -eq 0 ] && status=1
echo "$passed passed, $failed failed"
exit $status
