#!/usr/bin/env bash
# Install or upgrade placeharm from this offline bundle (issue 18). Needs no network: only this
# folder, a CPython the bundle has wheels for (see BUNDLE), and sha256sum or Python.
#
#   ./install.sh [--prefix DIR] [--python PYTHON] [--db FILE] [--config FILE]
#                [--backup-dir DIR] [--user NAME] [--no-smoke-test]
#
#   --prefix DIR      the virtual environment to create or upgrade (default /opt/placeharm);
#                     the command is then DIR/bin/placeharm
#   --python PYTHON   the interpreter for a new environment (default: the newest python3.X on
#                     PATH that the bundle has wheels for); an upgrade keeps the environment's
#   --db FILE         the store the installation serves: on an upgrade it is backed up, then
#                     migrated to this placeharm's schema and checked (remembered in
#                     DIR/placeharm-install.conf, so later upgrades need not name it)
#   --config FILE     the settings file placeharm runs with (PLACEHARM_CONFIG), e.g. for the
#                     audit HMAC key used when the backup and the check write the audit log
#   --backup-dir DIR  where the pre-upgrade backup goes (default: the store's folder)
#   --user NAME       run the backup and the check as this user (the service's, e.g.
#                     placeharm), so every file they write is that user's (remembered too)
#   --no-smoke-test   skip `placeharm demo --no-serve` in a temporary folder at the end
#
# Steps: verify every file against SHA256SUMS; back up the store (with the installed
# placeharm's own `placeharm backup`, which the audit log records; with no installed
# placeharm, a copy of the file made while no process has it open); install exactly the
# bundle's wheels with uv (--offline --no-index, hashes required); open the store with the new
# placeharm, which migrates it, and `placeharm check` it; run the demo as a smoke test.
set -euo pipefail
umask 022

here=$(cd "$(dirname "$0")" && pwd)
prefix=/opt/placeharm
python=""
db=""
config=""
backup_dir=""
user=""
smoke=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --db) db=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --backup-dir) backup_dir=$2; shift 2 ;;
    --user) user=$2; shift 2 ;;
    --no-smoke-test) smoke=0; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "install.sh: $*"; }
fail() { echo "install.sh: error: $*" >&2; exit 1; }

# -- 1. the bundle is whole and unchanged ---------------------------------------------------
cd "$here"
[ -f SHA256SUMS ] && [ -f BUNDLE ] || fail "run install.sh from the unpacked bundle folder"
if command -v sha256sum >/dev/null 2>&1; then
  sha256sum --check --quiet --strict SHA256SUMS || fail "files do not match SHA256SUMS: the bundle is damaged or altered; do not install it"
else
  verifier=$(command -v python3 || true)
  [ -n "$verifier" ] || fail "neither sha256sum nor python3 to verify the bundle with"
  "$verifier" - <<'PY' || fail "files do not match SHA256SUMS: the bundle is damaged or altered"
import hashlib, sys
bad = 0
for line in open("SHA256SUMS"):
    digest, name = line.rstrip("\n").split("  ", 1)
    with open(name, "rb") as f:
        if hashlib.sha256(f.read()).hexdigest() != digest:
            print("FAILED", name); bad += 1
sys.exit(1 if bad else 0)
PY
fi
# nothing beside the listed files: a wheel slipped into wheels/ would be installable
listed=$(cut -d' ' -f3- SHA256SUMS | LC_ALL=C sort)
present=$(find . -type f ! -name SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort)
[ "$listed" = "$present" ] || fail "the bundle holds files SHA256SUMS does not list: $(comm -13 <(echo "$listed") <(echo "$present") | tr '\n' ' ')"
version=$(sed -n 's/^version=//p' BUNDLE)
commit=$(sed -n 's/^commit=//p' BUNDLE)
pythons=$(sed -n 's/^pythons=//p' BUNDLE)
say "bundle verified: placeharm $version (commit ${commit:-unknown}), wheels for CPython $pythons"

# -- 2. the installation: new, or an upgrade --------------------------------------------------
conf="$prefix/placeharm-install.conf"
old=""
if [ -x "$prefix/bin/placeharm" ]; then
  old=$("$prefix/bin/placeharm" --version 2>/dev/null || echo "placeharm (version unknown)")
  say "upgrading $prefix: $old"
  if [ -z "$db" ] && [ -f "$conf" ]; then
    db=$(sed -n 's/^db=//p' "$conf")
  fi
  if [ -z "$config" ] && [ -f "$conf" ]; then
    config=$(sed -n 's/^config=//p' "$conf")
  fi
  if [ -z "$user" ] && [ -f "$conf" ]; then
    user=$(sed -n 's/^user=//p' "$conf")
  fi
elif [ -e "$prefix" ] && [ -n "$(ls -A "$prefix" 2>/dev/null)" ]; then
  fail "$prefix exists and is not a placeharm installation; choose another --prefix"
fi
run_env=()
[ -n "$config" ] && run_env+=("PLACEHARM_CONFIG=$config")
as_user=()
if [ -n "$user" ]; then
  id "$user" >/dev/null 2>&1 || fail "no user $user on this machine (--user)"
  as_user=(runuser -u "$user" --)
fi

python_minor() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
if [ -x "$prefix/bin/python" ]; then
  have=$(python_minor "$prefix/bin/python" || true)
  case " $pythons " in
    *" $have "*) python="$prefix/bin/python" ;;
    *) fail "$prefix runs on Python ${have:-that no longer starts}, for which this bundle has no wheels ($pythons): install into a new --prefix" ;;
  esac
elif [ -n "$python" ]; then
  have=$(python_minor "$python" || true)
  case " $pythons " in
    *" $have "*) ;;
    *) fail "$python is Python ${have:-(does not run)}; this bundle has wheels for $pythons" ;;
  esac
else
  for v in $(echo "$pythons" | tr ' ' '\n' | sort -t. -k2 -n -r); do
    if command -v "python$v" >/dev/null 2>&1 && [ "$(python_minor "python$v")" = "$v" ]; then
      python=$(command -v "python$v")
      break
    fi
  done
  [ -n "$python" ] || fail "no Python this bundle has wheels for ($pythons) is on PATH: install one from your distribution's packages (Debian 13: python3.13; Ubuntu 24.04: python3.12; Debian 12: python3.11; RHEL 9: python3.11 or python3.12), or name one with --python"
fi

# the pinned installer, from its wheel (a zip): no pip, no network
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
uv_wheel=$(ls installer/uv-*.whl)
"$python" - "$uv_wheel" "$tmp/uv" <<'PY'
import os, stat, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dest:
        dest.write(src.read())
os.chmod(sys.argv[2], stat.S_IRWXU)
PY
export UV_OFFLINE=1 UV_NO_INDEX=1 UV_PYTHON_DOWNLOADS=never UV_NO_CONFIG=1 UV_CACHE_DIR="$tmp/cache"
uv="$tmp/uv"

# -- 3. a backup of the store, before anything changes ----------------------------------------
backup=""
if [ -n "$db" ] && [ -e "$db" ]; then
  dir=${backup_dir:-$(dirname "$db")}
  mkdir -p "$dir"
  backup="$dir/placeharm-before-$version-$(date -u +%Y%m%dT%H%M%SZ).duckdb"
  say "backing up $db to $backup before anything changes"
  if [ -n "$old" ] && "$prefix/bin/placeharm" backup --help >/dev/null 2>&1; then
    "${as_user[@]}" env "${run_env[@]}" "$prefix/bin/placeharm" backup "$backup" --db "$db" \
      || fail "the backup failed (above): nothing was changed. If the dashboard runs on this store, stop it first (systemctl stop placeharm)"
  else  # no installed placeharm (or one from before `placeharm backup`): a copy of the
    # file, made only while no process has the store open
    # (as whoever runs install.sh; the copy then gets the store's owner and mode)
    "$python" - "$db" "$backup" <<'PY' || fail "the backup failed (above): nothing was changed. If the dashboard runs on this store, stop it first (systemctl stop placeharm)"
import fcntl, os, shutil, sys
src, dest = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    try:  # DuckDB holds a POSIX lock on a store it has open
        fcntl.lockf(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        sys.exit(f"{src} is open in another process")
    for a, b in ((src, dest), (src + ".wal", dest + ".wal")):
        if os.path.exists(a):
            shutil.copy2(a, b)
            owner = os.stat(a)
            if os.geteuid() == 0:
                os.chown(b, owner.st_uid, owner.st_gid)
print("copied the file (no installed placeharm to record the backup in the audit log)")
PY
  fi
fi

# -- 4. the packages: exactly the bundle's wheels -----------------------------------------------
if [ ! -x "$prefix/bin/python" ]; then
  say "creating the virtual environment $prefix with $python ($(python_minor "$python"))"
  "$uv" venv --quiet --python "$python" "$prefix"
fi
say "installing placeharm $version and its locked dependencies (offline, hashes checked)"
"$uv" pip sync --quiet --python "$prefix/bin/python" --find-links "$here/wheels" \
  --require-hashes --reinstall-package placeharm --compile-bytecode "$here/requirements.txt" \
  || fail "installing the wheels failed (see above); the store is unchanged${backup:+ and backed up in $backup}"
mkdir -p "$prefix/share/placeharm"  # the service unit and the deployment guide, for reference
cp "$here/placeharm.service" "$here/deploy.md" "$here/BUNDLE" "$prefix/share/placeharm/"
installed=$("$prefix/bin/placeharm" --version) || fail "the installed placeharm does not start"
say "installed: $installed"

# -- 5. remember the store for the next upgrade -------------------------------------------------
{
  echo "# written by install.sh: the store and settings of this installation"
  echo "db=$db"
  echo "config=$config"
  echo "user=$user"
  echo "version=$version"
  echo "commit=$commit"
  echo "installed=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$conf"

# -- 6. the store: migrate (placeharm upgrades a store when it opens it) and check ------------
if [ -n "$db" ] && [ -e "$db" ]; then
  say "migrating and checking the store $db"
  "${as_user[@]}" env "${run_env[@]}" "$prefix/bin/placeharm" check --db "$db" \
    || fail "placeharm $version is installed, but the store $db did not open or placeharm check found problems (above; they may predate this upgrade: the backup can be checked with the previous placeharm).${backup:+ The store as it was before is $backup: to go back, reinstall the previous bundle and run 'placeharm restore $backup --db $db'.}"
elif [ -n "$db" ]; then
  say "no store at $db yet: placeharm creates it when it first opens it"
fi

# -- 7. smoke test: the demo, in a temporary folder, on nothing of the installation's ------------
if [ "$smoke" = 1 ]; then
  say "smoke test: placeharm demo --no-serve (a throwaway demo store)"
  mkdir -p "$tmp/smoke"
  (cd "$tmp/smoke" && env -u PLACEHARM_CONFIG -u PLACEHARM_DB \
    "$prefix/bin/placeharm" demo --no-serve --db "$tmp/smoke/demo.duckdb" > "$tmp/smoke/out.txt" 2>&1) \
    || { cat "$tmp/smoke/out.txt" >&2; fail "the smoke test failed (output above)"; }
  say "smoke test passed ($(grep -c . "$tmp/smoke/out.txt") lines of demo output)"
fi
say "done: $prefix/bin/placeharm ($installed)${backup:+; backup before the upgrade: $backup}"
