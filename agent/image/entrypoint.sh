#!/bin/sh
# Starts the agent inside its image. The host's engine resolves every bind-mount source the
# agent names on the host, so whatever the agent mounts into job containers must be at the same
# path inside and out: the state folder is (docs/agent.md, "Container image").
set -eu
state=${GRIDX_STATE_DIR:-/var/lib/gridx-agent}
mkdir -p "$state"
# The image's static busybox, put where the host sees it, relays to jobs' ports.
if [ -z "${GRIDX_RELAY_BUSYBOX:-}" ]; then
  install -m 0755 /bin/busybox "$state/relay-busybox"
  export GRIDX_RELAY_BUSYBOX="$state/relay-busybox"
fi
# Egress rules must sit beside dockerd's own: take the iptables backend that holds its DOCKER-USER
# chain (nft unless only legacy does). Without NET_ADMIN neither answers and egress stays off.
if ! iptables-nft -w -S DOCKER-USER >/dev/null 2>&1 && iptables-legacy -w -S DOCKER-USER >/dev/null 2>&1; then
  update-alternatives --quiet --set iptables /usr/sbin/iptables-legacy
fi
exec /opt/gridx/agent/bin/gridx-agent.mjs "$@"
