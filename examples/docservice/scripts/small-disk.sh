#!/usr/bin/env bash
# A small disk for the "disk nearly full" experiment: a tmpfs of SIZE mounted on DIR for as
# long as this runs (needs root), so filling it never fills the machine's own disk.
#
#   scripts/small-disk.sh DIR SIZE     # e.g. small-disk.sh /tmp/x 64m
set -euo pipefail
DIR=${1:?usage: small-disk.sh DIR SIZE}
SIZE=${2:?usage: small-disk.sh DIR SIZE}
[ "$(id -u)" = 0 ] || { echo "small-disk.sh: mounting a tmpfs needs root" >&2; exit 1; }
mkdir -p "$DIR"
mount -t tmpfs -o "size=$SIZE" tmpfs "$DIR"
trap 'umount -l "$DIR"' EXIT
trap 'exit 0' TERM INT
echo "small-disk.sh: $SIZE tmpfs on $DIR"
while :; do sleep 1; done
