#!/usr/bin/env bash
# The `souk` binaries of node-e2e.sh's two upgrade releases: this tree plus product migrations
# from upgrade/product/, as the next releases would bring them.
#
#   upgrade-binaries.sh GOOD_TAG BAD_TAG   # prints the directory holding GOOD_TAG/souk, BAD_TAG/souk
#
#   GOOD_TAG: + 99990101000001_e2e_upgrade.sql (a harmless index, its Job held for 10 s)
#   BAD_TAG:  + that and 99990101000002_e2e_fails.sql (a migration that always fails)
#
# Migrations are embedded at compile time (`sqlx::migrate!`), so each is a release build of a
# scratch copy of the tree with the extra files. Never into the normal target dir: cargo's
# freshness check compares mtimes, and a modified copy built there would later pass for the
# real thing. The separate target dir is seeded with `cp -a` of the normal release build
# (workspace artifacts do not depend on the tree's path, and both copies keep mtimes), so only
# souk-product and the souk binary rebuild. The result is cached under the hash of the normal
# `souk` binary and of these inputs: an unchanged tree builds nothing.
#
# Needs the normal release build in $CARGO_TARGET_DIR (cargo build --release -p souk -p souk-operator).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
CACHE="$HOME/.cache/souk"
TARGET="${CARGO_TARGET_DIR:-$CACHE/target}"
GOOD=$1
BAD=$2
FIXTURES="$HERE/upgrade/product"
log() { echo "upgrade-binaries: $*" >&2; }

base="$TARGET/release/souk"
[[ -x $base ]] || {
  log "$base missing: cargo build --release -p souk -p souk-operator"
  exit 1
}
good_sql="$FIXTURES/99990101000001_e2e_upgrade.sql"
bad_sql="$FIXTURES/99990101000002_e2e_fails.sql"
key="$(cat "$base" "$good_sql" "$bad_sql" "${BASH_SOURCE[0]}" <(echo "$GOOD $BAD") | sha256sum | cut -c1-16)"
out="$CACHE/upgrade/$key"
if [[ -x $out/$GOOD/souk && -x $out/$BAD/souk ]]; then
  log "cached in $out"
  echo "$out"
  exit 0
fi
# Only the newest result is kept.
rm -rf "$CACHE/upgrade"
work="$CACHE/upgrade-build"
rm -rf "$work"
mkdir -p "$work/target" "$out"

t0=$(date +%s)
cp -a "$TARGET/release" "$work/target/release"
rsync -a --exclude=/.git --exclude=/target "$ROOT/" "$work/src/"
log "seeded $work in $(($(date +%s) - t0)) s ($(du -sh "$work/target" | cut -f1))"

build() { # tag sql...
  local tag=$1 t
  shift
  cp "$@" "$work/src/migrations/product/"
  # sqlx::migrate! does not tell cargo about the directory it reads: make the crate stale.
  touch "$work/src/services/product/src/lib.rs"
  t=$(date +%s)
  # The same packages as the normal build, so dependencies resolve to the same features and
  # stay fresh.
  (cd "$work/src" && CARGO_TARGET_DIR="$work/target" cargo build --release --locked \
    -p souk --bin souk -p souk-operator --bin souk-operator) >&2
  mkdir -p "$out/$tag"
  cp "$work/target/release/souk" "$out/$tag/souk"
  log "$tag built in $(($(date +%s) - t)) s"
}
build "$GOOD" "$good_sql"
build "$BAD" "$bad_sql"
rm -rf "$work"
echo "$out"
