"""Follow a test-case run on one node until it ends, fails elsewhere, or times out.

An action plugin (it runs on the controller) so that it can
- print progress lines while the job runs (a module can only answer at the end),
- see failures of the *other* nodes through marker files in the controller's run directory,
  and stop its own node's job at once instead of waiting for a collective timeout.
The node side is plain files: `pid` and `rc` written by launch.sh, and stop_job.sh to stop it.
"""

from __future__ import annotations

import json
import os
import shlex
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()
TICK = 0.2  # seconds between the node's own looks for the job's end


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dir", "timeout", "interval", "markers_dir", "progress_file", "total_steps",
                             "show_progress", "label"))

    def _shell(self, cmd: str) -> str:
        res = self._low_level_execute_command(cmd, sudoable=False)
        return res.get("stdout", "")

    def _stop(self, run_dir: str, reason: str, rc: int) -> None:
        # stop_job.sh (staged with launch.sh) stops the whole process tree and records why.
        q = shlex.quote
        self._shell(f"bash {q(run_dir + '/stop_job.sh')} {q(run_dir)} {q(reason)} {rc}")

    def _progress(self, line: str, label: str, total: int | None, elapsed: float) -> str | None:
        try:
            rec = json.loads(line)
        except ValueError:
            return None
        if rec.get("event") != "step":
            return None
        parts = [f"{label} step {rec['step']}" + (f"/{total}" if total else "")]
        for key, fmt in (("loss", "loss {:.4f}"), ("tokens_per_s_per_device", "{:,.0f} tok/s/dev"),
                         ("mfu", "MFU {:.1%}")):
            if isinstance(rec.get(key), int | float):
                parts.append(fmt.format(rec[key]))
        return "  ".join(parts) + f"  ({elapsed:.0f}s)"

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        run_dir = args["dir"]
        timeout = float(args["timeout"])
        interval = float(args.get("interval", 3))
        markers = args["markers_dir"]
        host = task_vars["inventory_hostname"]
        label = args.get("label", "run")
        show = bool(args.get("show_progress", False))
        total = args.get("total_steps")
        progress_file = args.get("progress_file")
        os.makedirs(markers, exist_ok=True)
        q = shlex.quote
        # The node itself waits for the job's end between polls (up to one interval, looking every
        # TICK s): the end is seen at once, not up to an interval late, for the same number of SSH calls.
        ticks = max(1, round(interval / TICK))
        probe = (f"cd {q(run_dir)} && i=0; while [ ! -e rc ] && [ $i -lt {ticks} ]; do "
                 f"sleep {TICK}; i=$((i+1)); done; cat rc 2>/dev/null; echo @@")
        if progress_file:
            probe += f"; tail -n 1 {q(progress_file)} 2>/dev/null"

        start = time.monotonic()
        last = None
        while True:
            out = self._shell(probe)
            rc_text, _sep, tail = out.partition("@@")
            elapsed = time.monotonic() - start
            if show and tail.strip() and tail != last:
                last = tail
                msg = self._progress(tail.strip().splitlines()[-1], label, total, elapsed)
                if msg:
                    display.display(msg)
            if rc_text.strip():
                rc = int(rc_text.split()[0])
                result.update(rc=rc, elapsed_s=round(elapsed, 1), changed=False)
                if rc != 0:
                    open(os.path.join(markers, f"failed-{host}"), "w").close()
                    raise AnsibleActionFail(f"{label} on {host} exited with status {rc}", result=result)
                return result
            failed = sorted(f[len("failed-"):] for f in os.listdir(markers) if f.startswith("failed-"))
            if failed:
                self._stop(run_dir, f"stopped: {', '.join(failed)} failed", 143)
                raise AnsibleActionFail(f"{label} on {host} stopped because {', '.join(failed)} failed",
                                        result=result)
            if elapsed > timeout:
                self._stop(run_dir, f"timeout after {timeout:.0f}s", 124)
                open(os.path.join(markers, f"failed-{host}"), "w").close()
                raise AnsibleActionFail(f"{label} on {host} timed out after {timeout:.0f}s", result=result)
