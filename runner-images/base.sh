# Sourced by the image builds (runner-images/build.sh, agent/image/build.sh): makes sure a
# Dockerfile's public base image is on the machine, pulled or, where no registry can be
# reached, bootstrapped from Debian packages and tagged with that same name.
base_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

mirror() {
  # The machine's own apt mirror, so an offline bootstrap uses what apt already reaches.
  local uri
  uri=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
    | awk '{print $2}' | grep -E '/debian/?$' | head -n1)
  echo "${uri:-http://deb.debian.org/debian}"
}

# The Node binary the `node` devDependency installed, for a node:MAJOR-* base; it must be that major.
node_binary() {
  local base=$1 bin="$base_root/node_modules/node/bin/node" want have
  want=${base#node:}
  want=${want%%[-.]*}
  [ -x "$bin" ] || { echo "gridx: $bin is missing (npm install puts it there)" >&2; exit 1; }
  have=$("$bin" --version)
  have=${have#v}
  [ "${have%%.*}" = "$want" ] || { echo "gridx: $base needs Node $want, but $bin is $have" >&2; exit 1; }
  echo "$bin"
}

ensure_base() {
  local base=$1
  docker image inspect "$base" >/dev/null 2>&1 && return 0
  if timeout 60 docker pull "$base" >/dev/null 2>&1; then return 0; fi
  echo "gridx: cannot pull $base; bootstrapping it from Debian packages" >&2
  command -v debootstrap >/dev/null || { echo "gridx: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
  local dir
  # A python base holds the interpreter, as the image of that name does; a node base the
  # devDependency's Node (the official image's is built the same way, for glibc); any other is bare Debian.
  local include=() cmd=bash node=""
  case $base in
    python:*) include=(--include=python3) cmd=python3 ;;
    node:*) include=(--include=ca-certificates) cmd=node node=$(node_binary "$base") ;;
  esac
  dir=$(mktemp -d /tmp/gridx-rootfs.XXXXXX)
  debootstrap --variant=minbase "${include[@]}" bookworm "$dir" "$(mirror)" >/tmp/gridx-debootstrap.log 2>&1 \
    || { echo "gridx: debootstrap failed, see /tmp/gridx-debootstrap.log" >&2; rm -rf "$dir"; exit 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  [ -z "$node" ] || install -m 0755 "$node" "$dir/usr/local/bin/node"
  tar -C "$dir" -c . | docker import -c "CMD [\"$cmd\"]" - "$base" >/dev/null
  rm -rf "$dir"
}
