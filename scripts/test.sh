#!/usr/bin/env bash
# Builds once, runs every test project (in parallel), checks the host for leftovers of the tests,
# and ends with one line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
log=$(mktemp /tmp/garden-test-log.XXXXXX)
status=0

dotnet build Garden.Actors.sln -c Release --nologo -v:q 2>&1 | tail -n 20 || status=1

if [ $status -eq 0 ]; then
  dotnet test Garden.Actors.sln -c Release --no-build --nologo \
    --blame-hang-timeout 8m --logger "console;verbosity=minimal" 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

passed=$(grep -Eo 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -Eo 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')

# What the tests may have left on the host: they keep everything under /tmp/garden-test-* and
# cgroups under garden-test-*; any entry here is a leak.
leaks=""
m=$(grep -c ' /tmp/garden-test-' /proc/self/mountinfo); [ "$m" -gt 0 ] && leaks="$leaks $m-mounts"
r=$(runc list 2>/dev/null | grep -c '/tmp/garden-test-'); [ "$r" -gt 0 ] && leaks="$leaks $r-runc-containers"
l=$(cat /sys/block/loop*/loop/backing_file 2>/dev/null | grep -c '/tmp/garden-test-'); [ "$l" -gt 0 ] && leaks="$leaks $l-loop-devices"
c=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d -name 'garden-test-*' 2>/dev/null | wc -l); [ "$c" -gt 0 ] && leaks="$leaks $c-cgroups"
# Networks of the tests are named with the prefixes te?? (test daemons) and tl?? (Linux tests), their own netns teo*.
n=$(ls /sys/class/net | grep -cE '^t[el][0-9a-z]{2}'); [ "$n" -gt 0 ] && leaks="$leaks $n-network-links"
s=$(ls /run/netns 2>/dev/null | grep -cE '^t[el]'); [ "$s" -gt 0 ] && leaks="$leaks $s-netns"
f=$(iptables-save 2>/dev/null | grep -cE '(^:| -j | -[io] )t[el][0-9a-z]{2}'); [ "$f" -gt 0 ] && leaks="$leaks $f-iptables-lines"
f6=$(ip6tables-save 2>/dev/null | grep -cE '(^:| -j | -[io] )t[el][0-9a-z]{2}'); [ "$f6" -gt 0 ] && leaks="$leaks $f6-ip6tables-lines"
# A user namespace holder (garden-agent ns-holder) lives only while its gardend creates a container.
u=$(pgrep -fc 'garden-agent ns-holder$'); [ "$u" -gt 0 ] && leaks="$leaks $u-userns-holders"
if [ -n "$leaks" ]; then
  echo "leak check FAILED:$leaks"
  grep ' /tmp/garden-test-' /proc/self/mountinfo | head
  runc list 2>/dev/null | grep '/tmp/garden-test-' | head
  ls /sys/class/net | grep -E '^t[el][0-9a-z]{2}' | head
  ls /run/netns 2>/dev/null | grep -E '^t[el]' | head
  iptables-save 2>/dev/null | grep -E '(^:| -j | -[io] )t[el][0-9a-z]{2}' | head
  ip6tables-save 2>/dev/null | grep -E '(^:| -j | -[io] )t[el][0-9a-z]{2}' | head
  pgrep -fa 'garden-agent ns-holder$' | head
  failed=$((failed + 1)); status=1
else
  echo "leak check passed: no mounts, loop devices, runc containers, cgroups, network links, namespaces, iptables or ip6tables rules or user namespace holders of the tests are left"
  passed=$((passed + 1))
fi
rm -f "$log"
[ "$failed" -gt 0 ] && status=1
[ "$passed" -eq 0 ] && status=1
echo "$passed passed, $failed failed"
exit $status
