#!/usr/bin/env bash
# Builds the agent image, gridx/agent:<package.json version> and gridx/agent:latest, from the
# bundle `npm run build` makes (`npm run agent:image` does both). The build context holds
# only the files the Dockerfile copies, and package.json only its version, so an unchanged
# agent is a cached build of a second or two.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=runner-images/base.sh
source "$root/runner-images/base.sh"

bundle="$root/agent/dist/gridx-agent.mjs"
[ -f "$bundle" ] || { echo "gridx: $bundle is missing; run npm run build" >&2; exit 1; }
dockerfile="$root/agent/image/Dockerfile"
version=$(sed -nE 's/^  "version": "([^"]+)".*/\1/p' "$root/package.json")
[ -n "$version" ] || { echo "gridx: no version in $root/package.json" >&2; exit 1; }
ensure_base "$(awk 'toupper($1)=="FROM"{print $2; exit}' "$dockerfile")"

ctx=$(mktemp -d /tmp/gridx-agent-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/agent/image" "$ctx/agent/bin" "$ctx/agent/dist"
cp "$root/agent/image/entrypoint.sh" "$ctx/agent/image/"
cp "$root"/agent/bin/* "$ctx/agent/bin/"
cp "$bundle" "$ctx/agent/dist/"
printf '{ "name": "gridx", "version": "%s", "private": true, "type": "module" }\n' "$version" >"$ctx/package.json"
docker build -q --build-arg "VERSION=$version" -f "$dockerfile" -t "gridx/agent:$version" -t gridx/agent:latest "$ctx" >/dev/null
echo "gridx: built gridx/agent:$version and gridx/agent:latest"
