#!/usr/bin/env bash
# `make bundle` (issue 18): one archive to install or upgrade placeharm on a machine with no
# network. It holds the wheels of placeharm and of every runtime dependency in uv.lock for one
# platform and the Python versions below, the pinned installer (uv's wheel), install.sh, the
# systemd unit and a SHA-256 manifest. Written to dist/ (not committed).
#
#   BUNDLE_PYTHONS   Python versions to carry wheels for (default: "3.11 3.12 3.13 3.14")
#   BUNDLE_PLATFORM  wheel platform (default: manylinux_2_28_x86_64: glibc 2.28 or newer on
#                    x86_64: Debian 10+, Ubuntu 20.04+, RHEL 8+)
#   UV_VERSION       the uv release the Makefile pins
# Downloading needs PyPI (through pip's cache: a second run downloads nothing it has);
# installing needs nothing but the archive.
set -euo pipefail
cd "$(dirname "$0")/.."

UV=.uv/bin/uv
PIP=.uv/bin/pip
PYTHONS=${BUNDLE_PYTHONS:-3.11 3.12 3.13 3.14}
PLATFORM=${BUNDLE_PLATFORM:-manylinux_2_28_x86_64}
: "${UV_VERSION:?UV_VERSION is set by the Makefile}"
export UV_PYTHON_DOWNLOADS=never

# pip takes a platform tag literally: name every manylinux tag the platform runs (PEP 600:
# a glibc 2.28 machine runs wheels for glibc 2.5 to 2.28; manylinux1/2010/2014 are 2.5/12/17)
[[ "$PLATFORM" =~ ^manylinux_2_([0-9]+)_([a-z0-9_]+)$ ]] \
  || { echo "bundle: BUNDLE_PLATFORM must be manylinux_2_N_ARCH, e.g. manylinux_2_28_x86_64" >&2; exit 2; }
glibc=${BASH_REMATCH[1]}
arch=${BASH_REMATCH[2]}
platforms=()
for ((m = glibc; m >= 5; m--)); do platforms+=(--platform "manylinux_2_${m}_${arch}"); done
((glibc >= 17)) && platforms+=(--platform "manylinux2014_${arch}")
((glibc >= 12)) && platforms+=(--platform "manylinux2010_${arch}")
platforms+=(--platform "manylinux1_${arch}")
# pip as PyPI's client alone: not this machine's pip configuration (local indexes, links,
# constraints), which would change what the bundle holds
pip_download() {
  PIP_CONFIG_FILE=/dev/null "$PIP" --isolated download --quiet --disable-pip-version-check \
    ${PIP_CERT:+--cert "$PIP_CERT"} --no-deps --only-binary=:all: "${platforms[@]}" "$@"
}

for py in $PYTHONS; do
  case "$py" in 3.11|3.12|3.13|3.14) ;; *) echo "bundle: Python $py is not supported (3.11-3.14)" >&2; exit 2 ;; esac
done

commit=$(git rev-parse HEAD 2>/dev/null || true)
dirty=""
if [ -n "$commit" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  dirty="-dirty"
  echo "bundle: note: the work tree has uncommitted changes; the bundle is marked -dirty" >&2
fi

mkdir -p dist
work=$(mktemp -d dist/.bundle-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/wheels" "$work/installer"

echo "bundle: building the placeharm wheel"
"$UV" build --quiet --wheel --out-dir "$work/wheels" >/dev/null
wheel=$(cd "$work/wheels" && ls placeharm-*.whl)
version=${wheel#placeharm-}
version=${version%%-*}
name="placeharm-${version}${commit:+-${commit:0:12}}${dirty}-${PLATFORM}"
stage="$work/$name"
mkdir -p "$stage/wheels" "$stage/installer"
mv "$work/wheels/$wheel" "$stage/wheels/"

# the runtime dependencies exactly as locked, with their hashes (no dev group, no project).
# No extras, deliberately: the `spark` extra (pyspark, a 450 MB source package, and Java) is for
# a Spark cluster's Python (docs/deploy.md, "The Spark job on a cluster"), not the server.
"$UV" export --quiet --locked --no-dev --no-emit-project --format requirements-txt \
  --output-file "$work/deps.txt" >/dev/null
# Wheels are kept in a cache folder across runs (pip's own HTTP cache is not reliable here):
# each set is taken from the cache with no network, and downloaded into it only when missing.
cache=${BUNDLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/placeharm-bundle}
mkdir -p "$cache"
take() {  # take DEST ARGS...: from the cache alone, else download into the cache first
  local dest=$1
  shift
  pip_download --no-index --find-links "$cache" --dest "$dest" "$@" >/dev/null 2>&1 && return
  pip_download --dest "$cache" "$@"
  pip_download --no-index --find-links "$cache" --dest "$dest" "$@"
}
for py in $PYTHONS; do
  echo "bundle: wheels for CPython $py on $PLATFORM"
  take "$stage/wheels" --require-hashes --implementation cp --python-version "$py" \
    -r "$work/deps.txt"
done
echo "bundle: the installer, uv $UV_VERSION"
take "$stage/installer" --python-version 3.11 "uv==$UV_VERSION"

# what install.sh installs: the lock's pins and hashes, and placeharm's own wheel and hash
{
  echo "# placeharm $version${commit:+ (commit $commit$dirty)}: runtime packages from uv.lock"
  grep -v '^#' "$work/deps.txt"
  echo "placeharm==$version \\"
  echo "    --hash=sha256:$(sha256sum "$stage/wheels/$wheel" | cut -d' ' -f1)"
} > "$stage/requirements.txt"

cp packaging/install.sh "$stage/install.sh"
chmod 755 "$stage/install.sh"
cp packaging/placeharm.service "$stage/placeharm.service"
cp docs/deploy.md "$stage/deploy.md"
cat > "$stage/BUNDLE" <<INFO
version=$version
commit=$commit$dirty
platform=$PLATFORM
pythons=$PYTHONS
uv=$UV_VERSION
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
INFO

(cd "$stage" && find . -type f ! -name SHA256SUMS | LC_ALL=C sort | sed 's|^\./||' \
  | xargs sha256sum > SHA256SUMS)

archive="dist/$name.tar.gz"
tar -C "$work" -cf - "$name" | gzip -1 > "$archive.tmp"
mv "$archive.tmp" "$archive"
(cd dist && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
count=$(find "$stage/wheels" -name '*.whl' | wc -l)
echo "bundle: $archive ($(du -m "$archive" | cut -f1) MB, $count wheels, CPython $PYTHONS," \
  "$PLATFORM); its SHA-256 is in $archive.sha256"
echo "bundle: on the target: tar xzf $name.tar.gz && sudo ./$name/install.sh --db /var/lib/placeharm/placeharm.duckdb"
