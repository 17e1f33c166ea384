#!/bin/sh
# Prepares what tests/deploy/test_docker.py needs to build the real Dockerfile without a network:
#   CACHE/base-oci.tar  a Debian bookworm image with python3 and venv, standing in for python:3.11-slim
#   CACHE/wheels/       every runtime dependency (at the versions installed in VENV_PYTHON's venv),
#                       plus setuptools for building the solstice wheel
# Usage: deploy/docker/prepare-offline-build.sh CACHE VENV_PYTHON   (`make test` uses build/docker)
# The base is kept once made (delete it to refresh); the wheelhouse is made anew on every call.
set -eu
if [ "$(id -u)" != 0 ]; then
	echo "$0: mmdebstrap and buildah need root here; run it (or make test) as root" >&2
	exit 1
fi
cache=$1
python=$2
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$cache"

if [ ! -s "$cache/base-oci.tar" ]; then
	work=$(mktemp -d)
	trap 'buildah --root "$work/root" --runroot "$work/run" --storage-driver vfs rm --all >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
	# Documentation and translations are left out: a smaller base is copied faster by the vfs driver.
	mmdebstrap --quiet --variant=minbase --include=python3,python3-venv \
		--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
		bookworm "$work/rootfs.tar" "$mirror"
	b="buildah --root $work/root --runroot $work/run --storage-driver vfs"
	container=$($b from scratch)
	$b add "$container" "$work/rootfs.tar" /
	$b config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd python3 "$container"
	$b commit --quiet "$container" "oci-archive:$cache/base-oci.tar.part:localhost/solstice-test-base:bookworm" >/dev/null
	mv "$cache/base-oci.tar.part" "$cache/base-oci.tar"
fi

rm -rf "$cache/wheels.part"
"$python" -m pip freeze --exclude-editable >"$cache/constraints.txt"
"$python" -m pip download --quiet --only-binary=:all: --dest "$cache/wheels.part" \
	--constraint "$cache/constraints.txt" "$(dirname "$0")/../.." 'setuptools>=68'
rm -rf "$cache/wheels"
mv "$cache/wheels.part" "$cache/wheels"
