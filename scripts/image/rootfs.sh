#!/bin/sh
# The root filesystem of a Souk image, for both ways of building one: the Dockerfiles run this
# in their build stage and end `FROM scratch` + `COPY --from=build /rootfs /`, and
# scripts/image/oci.py runs it on the host to write an OCI image without Docker. One description,
# so the two cannot drift.
#
#   rootfs.sh ROOTFS BINARY PATH_IN_IMAGE
#
# What goes in: the binary, the shared libraries `ldd` names and the dynamic loader, CA
# certificates, /etc/passwd and /etc/group with `nonroot` (65532) and its home, /tmp (1777),
# and an nsswitch.conf. No shell, no package manager.
set -eu

root=$1
binary=$2
dest=$3

[ -x "$binary" ] || { echo "rootfs.sh: $binary is not an executable" >&2; exit 1; }
mkdir -p "$root"
install -D -m 0755 "$binary" "$root$dest"

# Shared libraries (`name => /path (addr)`) and the loader (`/lib64/ld-linux-... (addr)`),
# copied to the same paths, symlinks resolved.
ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
  while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done

ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "rootfs.sh: $ca missing (install ca-certificates)" >&2; exit 1; }
install -D -m 0644 "$ca" "$root$ca"

mkdir -p "$root/etc"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$root/etc/group"
printf '%s\n' 'hosts: files dns' >"$root/etc/nsswitch.conf"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"
install -d -m 0700 "$root/root"
install -d -m 0755 "$root/home/nonroot"
chown 65532:65532 "$root/home/nonroot" 2>/dev/null || true
install -d -m 1777 "$root/tmp"
