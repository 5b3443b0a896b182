#!/usr/bin/env bash
# Builds the runner images. Each Dockerfile names a normal public base image; where no
# registry can be reached, the base is bootstrapped from Debian packages and tagged with
# that same name, so the Dockerfiles stay the ordinary ones.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- python jupyter
images=("$@")

mirror() {
  # The machine's own apt mirror, so an offline bootstrap uses what apt already reaches.
  local uri
  uri=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
    | awk '{print $2}' | grep -E '/debian/?$' | head -n1)
  echo "${uri:-http://deb.debian.org/debian}"
}

ensure_base() {
  local base=$1
  docker image inspect "$base" >/dev/null 2>&1 && return 0
  if timeout 60 docker pull "$base" >/dev/null 2>&1; then return 0; fi
  echo "gridx: cannot pull $base; bootstrapping it from Debian packages" >&2
  command -v debootstrap >/dev/null || { echo "gridx: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
  local dir
  # A python base holds the interpreter, as the image of that name does; any other is bare Debian.
  local include=() cmd=bash
  case $base in python:*) include=(--include=python3) cmd=python3 ;; esac
  dir=$(mktemp -d /tmp/gridx-rootfs.XXXXXX)
  debootstrap --variant=minbase "${include[@]}" bookworm "$dir" "$(mirror)" >/tmp/gridx-debootstrap.log 2>&1 \
    || { echo "gridx: debootstrap failed, see /tmp/gridx-debootstrap.log" >&2; rm -rf "$dir"; exit 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import -c "CMD [\"$cmd\"]" - "$base" >/dev/null
  rm -rf "$dir"
}

for name in "${images[@]}"; do
  dockerfile="$here/$name/Dockerfile"
  [ -f "$dockerfile" ] || { echo "gridx: no runner image named $name" >&2; exit 1; }
  base=$(awk 'toupper($1)=="FROM"{print $2; exit}' "$dockerfile")
  ensure_base "$base"
  docker build -q -t "gridx/$name:latest" "$here/$name" >/dev/null
  echo "gridx: built gridx/$name:latest (base $base)"
done
