/**
 * The commands the onboarding page shows for starting an agent with a freshly issued token:
 * pure text, so the page and its tests agree on every character an operator pastes.
 */

/** What the commands need: where the agent connects, with which token, and which release to install. */
export interface InstallTarget {
  /** The control plane's origin, as the browser reached it. */
  url: string;
  token: string;
  /** The agent release to install (`AGENT_RECOMMENDED_VERSION`); empty: the newest one. */
  version: string;
}

export interface InstallLines {
  /** Linux with systemd: installs the package, then `gridx-agent install` writes the unit and starts it. */
  linux: string;
  /** WSL2 with systemd enabled, typed in Windows (PowerShell or cmd): the Linux line run as root inside the default distro. */
  wsl: string;
  /**
   * WSL2 without systemd: writes the env file without starting a service, then a Windows
   * scheduled task starts the agent in WSL at logon, reading the token from that 0600 file.
   */
  wslTask: string;
  /** The agent image, driving the host's engine through its socket. */
  docker: string;
}

/** Single-quoted for sh: nothing inside is expanded. */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The agent's state folder in the image, mounted at the same path on the host (agent/image/entrypoint.sh). */
const IMAGE_STATE_DIR = "/var/lib/gridx-agent";

export function installLines(t: InstallTarget): InstallLines {
  const pkg = t.version ? `gridx@${t.version}` : "gridx";
  const image = `gridx/agent:${t.version || "latest"}`;
  const url = shQuote(t.url);
  const token = shQuote(t.token);
  const install = `npm install -g ${pkg} && GRIDX_AGENT_TOKEN=${token} gridx-agent install --url ${url}`;
  const linux = `sudo npm install -g ${pkg} && sudo GRIDX_AGENT_TOKEN=${token} gridx-agent install --url ${url}`;
  // Inside the double quotes Windows hands wsl.exe, the sh line keeps its single quotes.
  const wsl = `wsl.exe -u root -- sh -c "${install}"`;
  // As systemd's Restart=always with RestartPreventExitStatus=3: an upgrade's exit 75 or a crash restarts it.
  const started = `set -a; . /etc/gridx/agent.env; while :; do gridx-agent run; [ $? -eq 3 ] && break; sleep 5; done`;
  const wslTask =
    `wsl.exe -u root -- sh -c "${install} --no-start" && ` +
    `schtasks /Create /F /SC ONLOGON /TN gridx-agent /TR "wsl.exe -u root -- sh -c '${started}'"`;
  const docker = [
    // As docs/agent.md#container-image: host network and NET_ADMIN for egress, the host's cgroups for usage.
    "docker run --name gridx-agent -d --restart unless-stopped --init --network host --cap-add NET_ADMIN --cgroupns host",
    "-v /var/run/docker.sock:/var/run/docker.sock",
    `-v ${IMAGE_STATE_DIR}:${IMAGE_STATE_DIR}`,
    "-v /sys/fs/cgroup:/sys/fs/cgroup",
    `-e GRIDX_AGENT_TOKEN=${token}`,
    image,
    `--url ${url}`,
  ].join(" ");
  return { linux, wsl, wslTask, docker };
}
