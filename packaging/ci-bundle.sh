#!/usr/bin/env bash
# CI (issue 18): build the offline bundle, then install it into a fresh folder with the network
# cut (unshare -n, as root), over an existing store, and upgrade it once: checksums, backup,
# migration, `placeharm check` and the demo smoke test all run from the installed copy.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

timeout 1500 make bundle
archive=$(ls -t dist/placeharm-*.tar.gz | head -1)
built=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -C "$tmp" -xzf "$archive"
bundle=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d -name 'placeharm-*')

offline=()
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  offline=(unshare -n --)
  # the namespace has no network at all: not even PyPI's address resolves or connects
  if "${offline[@]}" python3 -c "import socket; socket.create_connection(('pypi.org', 443), 5)" \
    2>/dev/null; then
    echo "CI bundle: unshare -n left a network" >&2
    exit 1
  fi
  echo "CI bundle: installing with the network cut (unshare -n)"
else
  echo "CI bundle: unshare -n unavailable (not root?): installing without cutting the network;" \
    "install.sh still installs only from the bundle (uv --offline --no-index, hashes required)"
fi

# a store made before the install (by the checkout's placeharm), which the install backs up,
# migrates and checks
mkdir "$tmp/state"
store="$tmp/state/placeharm.duckdb"
.venv/bin/placeharm demo --no-serve --db "$store" >/dev/null
before=$(sha256sum < "$store")

timeout 900 "${offline[@]}" "$bundle/install.sh" --prefix "$tmp/placeharm" --db "$store"
copy=$(ls "$tmp"/state/placeharm-before-*.duckdb)
[ "$(sha256sum < "$copy")" = "$before" ] \
  || { echo "CI bundle: the backup before installing is not the store as it was" >&2; exit 1; }

# the installed copy says which commit it was built from
installed=$("$tmp/placeharm/bin/placeharm" --version)
commit=$(git rev-parse HEAD)
case "$installed" in
  *"commit ${commit:0:12}"*) ;;
  *) echo "CI bundle: installed '$installed', not commit $commit" >&2; exit 1 ;;
esac

# an upgrade over the installation: the store (remembered) is backed up by the installed
# placeharm (`placeharm backup`), then migrated and checked
sleep 1  # a new backup name (seconds)
timeout 600 "${offline[@]}" "$bundle/install.sh" --prefix "$tmp/placeharm" --no-smoke-test
[ "$(ls "$tmp"/state/placeharm-before-*.duckdb | wc -l)" = 2 ] \
  || { echo "CI bundle: the upgrade made no backup" >&2; exit 1; }
"$tmp/placeharm/bin/placeharm" check --db "$store"

echo "CI bundle: $archive, $(du -m "$archive" | cut -f1) MB; make bundle $((built - started)) s," \
  "install, upgrade and smoke test $((SECONDS - built)) s"
