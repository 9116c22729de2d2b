#!/usr/bin/env bash
# Removes what killed test runs left on the host: runc containers, mounts, loop devices, links, netns,
# iptables chains and cgroups of the tests (names garden-test-*, te??, tl??). Safe while no test runs.
for id in $(runc list -q 2>/dev/null); do
  b=$(runc state $id 2>/dev/null | grep -o '"bundle": "[^"]*' | cut -d'"' -f4)
  case "$b" in /tmp/garden-test-*) runc kill $id KILL 2>/dev/null; sleep 0.2; runc delete -f $id;; esac
done
pkill -9 -f 'garden-agent ns-holder( [0-9]+)?$'
grep ' /tmp/garden-test-' /proc/self/mountinfo | awk '{print $5}' | sort -r | while read m; do umount -l "$m"; done
for l in $(losetup -a | grep /tmp/garden-test- | cut -d: -f1); do losetup -d $l; done
for n in $(ls /sys/class/net | grep -E '^t[el][0-9a-z]{2}'); do ip link del $n 2>/dev/null; done
for s in $(ls /run/netns 2>/dev/null | grep -E '^t[el]'); do ip netns del $s; done
for t in filter nat mangle raw; do for cmd in iptables ip6tables; do
  $cmd-save -t $t 2>/dev/null | grep -E '^-A' | grep -E '( -j | -[io] )t[el][0-9a-z]{2}' | grep -vE '^-A t[el][0-9a-z]{2}' | sed 's/^-A/-D/' | while read r; do eval $cmd -t $t $r; done
  for c in $($cmd-save -t $t 2>/dev/null | grep -oE '^:t[el][0-9a-z]{2}[^ ]*' | tr -d :); do $cmd -t $t -F $c; done
  for c in $($cmd-save -t $t 2>/dev/null | grep -oE '^:t[el][0-9a-z]{2}[^ ]*' | tr -d :); do $cmd -t $t -X $c; done
done; done
find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -depth -type d -name 'garden-test-*' | while read d; do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
