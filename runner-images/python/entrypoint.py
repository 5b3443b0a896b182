"""Reads /work/input/task.json and runs the job's script in place of this process."""
import json
import os
import sys

TASK_PATH = "/work/input/task.json"

try:
    with open(TASK_PATH, encoding="utf-8") as f:
        task = json.load(f)
    script = os.path.join("/work/input", task["script"])
    args = [str(a) for a in task.get("args", [])]
except (OSError, ValueError, KeyError, TypeError) as err:
    print(f"gridx: cannot read {TASK_PATH}: {err}", file=sys.stderr)
    sys.exit(2)

os.execvp(sys.executable, [sys.executable, script, *args])
