#!/usr/bin/env bash
# Builds the default rootfs from Debian's busybox-static: a read-only base shared by every container.
# Usage: make-rootfs.sh DEST   (idempotent: rebuilds into DEST.tmp, then swaps)
set -euo pipefail
dest=${1:?usage: make-rootfs.sh DEST}
bb=/bin/busybox
[ -x "$bb" ] || { echo "make-rootfs: $bb missing (apt-get install busybox-static)" >&2; exit 1; }
file -L "$bb" 2>/dev/null | grep -q 'statically linked' || ldd "$bb" 2>&1 | grep -q 'not a dynamic' \
  || { echo "make-rootfs: $bb is not static (install busybox-static)" >&2; exit 1; }
tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,root,home/vcap,tmp,proc,sys,dev,run,var/tmp,.garden}
cp "$bb" "$tmp/bin/busybox"
for applet in $("$bb" --list-full); do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$tmp/$(dirname "$applet")"
  ln -sf /bin/busybox "$tmp/$applet"
done
cat > "$tmp/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
vcap:x:1000:1000:vcap:/home/vcap:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$tmp/etc/group" <<'G'
root:x:0:
vcap:x:1000:
nogroup:x:65534:
G
echo 'hosts: files dns' > "$tmp/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$tmp/etc/hosts"
: > "$tmp/etc/resolv.conf"
chown 1000:1000 "$tmp/home/vcap"
chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
chmod 0700 "$tmp/root"
rm -rf "$dest.old"
[ -e "$dest" ] && mv "$dest" "$dest.old"
mv "$tmp" "$dest"
rm -rf "$dest.old"
echo "rootfs ready: $dest"
