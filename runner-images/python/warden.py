"""The lease warden: stops an agent's job containers once the agent stops renewing its lease.

The agent (agent/src/runner/warden.ts) starts one of these per agent installation, in a
container of its own, so it outlives the agent's process and the agent's cgroup: a `kill -9`
or an OOM kill of the agent leaves the warden running. The agent touches the lease file every
few seconds; once the file has not changed for GRIDX_LEASE_S seconds, every running container
labelled gridx.instance=GRIDX_INSTANCE gets SIGTERM, and SIGKILL GRIDX_GRACE_S seconds later.
It keeps watching afterwards, so a container of that instance started while no agent renews
is stopped too. Standard library only: the runner image carries nothing else.
"""
import http.client
import json
import os
import signal
import socket
import sys
import time
import urllib.parse

INSTANCE = os.environ["GRIDX_INSTANCE"]
LEASE_FILE = os.environ["GRIDX_LEASE_FILE"]
LEASE_S = float(os.environ.get("GRIDX_LEASE_S", "20"))
CHECK_S = float(os.environ.get("GRIDX_CHECK_S", "1"))
GRACE_S = float(os.environ.get("GRIDX_GRACE_S", "5"))
DOCKER_SOCKET = "/var/run/docker.sock"
# One Engine API call may take this long; a hung engine must not stall the watch forever.
CALL_TIMEOUT_S = 10.0


class UnixConnection(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("docker", timeout=CALL_TIMEOUT_S)

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(DOCKER_SOCKET)
        self.sock = sock


def call(method, path, ok=()):
    """The response body; statuses in `ok` (say, 404 for a container already gone) count as success."""
    conn = UnixConnection()
    try:
        conn.request(method, path)
        res = conn.getresponse()
        body = res.read()
        if not (200 <= res.status < 300 or res.status in ok):
            raise RuntimeError(f"{method} {path}: HTTP {res.status} {body[:200]!r}")
        return body
    finally:
        conn.close()


def running():
    filters = json.dumps({"label": [f"gridx.instance={INSTANCE}"], "status": ["running"]})
    return [c["Id"] for c in json.loads(call("GET", "/containers/json?filters=" + urllib.parse.quote(filters)))]


def kill(ids, sig):
    for cid in ids:
        # 404: gone already; 409: stopped in the meantime.
        call("POST", f"/containers/{cid}/kill?signal={sig}", ok=(404, 409))


def stop_all(why):
    """SIGTERM to all at once, then SIGKILL to what is left: bounded by GRACE_S however many there are."""
    ids = running()
    if not ids:
        return
    print(f"gridx-warden: {why}; stopping {len(ids)} container(s): {' '.join(i[:12] for i in ids)}", flush=True)
    kill(ids, "SIGTERM")
    deadline = time.monotonic() + GRACE_S
    left = ids
    while left and time.monotonic() < deadline:
        time.sleep(min(0.2, CHECK_S))
        left = [i for i in running() if i in ids]
    kill(left, "SIGKILL")


class Lease:
    """The lease's age by this process's monotonic clock, so a step of the wall clock never expires it."""

    def __init__(self):
        self.mtime = None
        self.changed_at = None

    def age(self):
        """Seconds since the agent last renewed; None when there is no lease file at all."""
        try:
            mtime = os.stat(LEASE_FILE).st_mtime
        except FileNotFoundError:
            self.mtime = self.changed_at = None
            return None
        now = time.monotonic()
        if self.changed_at is None:
            # Seen for the first time (the warden just started): only the wall clock can date it.
            self.changed_at = now - max(0.0, time.time() - mtime)
        elif mtime != self.mtime:
            self.changed_at = now
        self.mtime = mtime
        return now - self.changed_at


def main():
    # PID 1 gets no default SIGTERM handler; without this a `docker stop` would wait for SIGKILL.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        call("GET", "/_ping")
    except OSError as err:
        # No use watching what it cannot stop: exiting shows it in `docker ps` as Restarting.
        sys.exit(f"gridx-warden: cannot reach the Docker engine at {DOCKER_SOCKET}: {err}")
    lease = Lease()
    print(f"gridx-warden: watching {LEASE_FILE}: lease {LEASE_S:g} s, check every {CHECK_S:g} s, stop grace {GRACE_S:g} s", flush=True)
    while True:
        try:
            age = lease.age()
            if age is None or age > LEASE_S:
                stop_all(f"no lease file {LEASE_FILE}" if age is None else f"lease of {INSTANCE} is {age:.0f} s old")
        except Exception as err:  # the engine restarting, a full disk: keep watching
            print(f"gridx-warden: {err}", file=sys.stderr, flush=True)
        time.sleep(CHECK_S)


if __name__ == "__main__":
    main()
