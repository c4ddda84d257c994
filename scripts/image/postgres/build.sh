#!/usr/bin/env bash
# A PostgreSQL 15 image from Debian's packages, honouring the public `postgres` image's
# environment and init contract (see docker-entrypoint.sh), as an OCI tarball:
#
#   build.sh NAME OUT.tar      # e.g. localhost/souk-postgres:15
#
# The rootfs: the server and client binaries with their libraries, the share and lib
# directories initdb needs, a static busybox as /bin/sh (and the few tools the entrypoint and
# init scripts use), user postgres (999). Runs as 999 like the public image.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
name=$1
out=$2
for p in postgresql-15 busybox-static; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null
done
bin=/usr/lib/postgresql/15/bin
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
root="$tmp/rootfs"
mkdir -p "$root/usr/local/bin" "$root/bin"
# Debian's layout: PostgreSQL finds its share and lib directories relative to its binaries.
for b in postgres initdb pg_ctl psql pg_isready; do
  "$HERE/../rootfs.sh" "$root" "$bin/$b" "$bin/$b"
  ln -s "$bin/$b" "$root/usr/local/bin/$b"
done
cp -a /usr/share/postgresql/15 "$root/usr/share/postgresql/" 2>/dev/null || {
  mkdir -p "$root/usr/share/postgresql"
  cp -a /usr/share/postgresql/15 "$root/usr/share/postgresql/"
}
mkdir -p "$root/usr/lib/postgresql/15"
cp -a /usr/lib/postgresql/15/lib "$root/usr/lib/postgresql/15/"
# Libraries of the server's loadable modules.
for so in "$root"/usr/lib/postgresql/15/lib/*.so; do
  ldd "$so" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r lib; do
    [[ -e $root$lib ]] || { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
  done
done
mkdir -p "$root/usr/share"
cp -a /usr/share/zoneinfo "$root/usr/share/"
cp /bin/busybox "$root/bin/busybox"
for a in sh cat mkdir chmod rm mktemp ls; do ln -s busybox "$root/bin/$a"; done
install -m 0755 "$HERE/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
echo 'postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh' >>"$root/etc/passwd"
echo 'postgres:x:999:' >>"$root/etc/group"
install -d -o 999 -g 999 -m 0755 "$root/var/lib/postgresql" "$root/var/lib/postgresql/data"
install -d -o 999 -g 999 -m 2777 "$root/var/run/postgresql"
cat >"$tmp/config.json" <<JSON
{"User": "999:999", "Entrypoint": ["docker-entrypoint.sh"], "Cmd": ["postgres"],
 "Env": ["PATH=/usr/local/bin:/bin", "PGDATA=/var/lib/postgresql/data", "LANG=C"],
 "ExposedPorts": {"5432/tcp": {}}, "Volumes": {"/var/lib/postgresql/data": {}}}
JSON
python3 "$HERE/../oci.py" rootfs "$root" "$tmp/config.json" "$name" "$out"
