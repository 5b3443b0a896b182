#!/usr/bin/env bash
# Builds the runner images. Each Dockerfile names a normal public base image; where no
# registry can be reached, the base is bootstrapped from Debian packages and tagged with
# that same name, so the Dockerfiles stay the ordinary ones.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- python jupyter
images=("$@")

# shellcheck source=runner-images/base.sh
source "$here/base.sh"

for name in "${images[@]}"; do
  dockerfile="$here/$name/Dockerfile"
  [ -f "$dockerfile" ] || { echo "gridx: no runner image named $name" >&2; exit 1; }
  base=$(awk 'toupper($1)=="FROM"{print $2; exit}' "$dockerfile")
  ensure_base "$base"
  docker build -q -t "gridx/$name:latest" "$here/$name" >/dev/null
  echo "gridx: built gridx/$name:latest (base $base)"
done
