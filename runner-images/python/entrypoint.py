"""Reads /work/input/task.json and runs the job's script in place of this process.

With GRIDX_PRESTARTED=1 the container was started before its job existed: this waits on the
go FIFO until the agent has written the job's files, then removes the FIFO so the job never
sees it. The job's environment then comes from task.json's `env`, since the container's own
was fixed before the job was known; GRIDX_PRESTARTED itself is not passed on.
"""
import json
import os
import sys

TASK_PATH = "/work/input/task.json"
GO_PATH = "/work/output/.gridx-go"

if os.environ.pop("GRIDX_PRESTARTED", None) == "1":
    # Opening blocks, at no cost, until the agent opens the other end.
    with open(GO_PATH, encoding="utf-8") as go:
        line = go.readline()
    os.unlink(GO_PATH)
    if line != "go\n":
        sys.exit(0)  # the agent closed the line unused: no job for this sandbox

try:
    with open(TASK_PATH, encoding="utf-8") as f:
        task = json.load(f)
    script = os.path.join("/work/input", task["script"])
    args = [str(a) for a in task.get("args", [])]
    env = {str(k): str(v) for k, v in task.get("env", {}).items()}
except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
    print(f"gridx: cannot read {TASK_PATH}: {err}", file=sys.stderr)
    sys.exit(2)

os.environ.update(env)
os.execvp(sys.executable, [sys.executable, script, *args])
