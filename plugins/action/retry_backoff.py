"""Run one module, retrying transient failures with a growing (exponential) delay.

Ansible's `until`/`retries`/`delay` waits the same time between every attempt; a mirror that is
briefly overloaded recovers better when clients back off. roles/artifact runs its downloads
(get_url, amazon.aws.s3_object) through this action. Failures the caller names as permanent (a 404,
a checksum mismatch) stop at once. The result is the module's last result plus `attempts` and
`delays` (the seconds slept before each retry), so callers and tests can see what happened.

    - awsome.distributed_training.retry_backoff:
        module: ansible.builtin.get_url
        module_args: {url: ..., dest: ..., checksum: ...}
        retries: 4          # retries after the first attempt
        delay: 5            # seconds before the first retry; then delay * backoff ** n
        backoff: 2
        max_delay: 60
        stop_status: [404]  # status codes that are not retried
        stop_msgs: [checksum]  # substrings of msg that are not retried
"""

from __future__ import annotations

import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


def backoff_delays(retries: int, delay: float, backoff: float, max_delay: float) -> list[float]:
    """The wait before each retry: delay, delay*backoff, delay*backoff**2, ... capped at max_delay."""
    return [min(delay * backoff ** n, max_delay) for n in range(retries)]


def is_permanent(result: dict, stop_status: list[int], stop_msgs: list[str]) -> bool:
    """A failure that another attempt cannot fix (the caller's classification)."""
    msg = str(result.get("msg", ""))
    return int(result.get("status_code") or 0) in stop_status or any(s in msg for s in stop_msgs)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("module", "module_args", "retries", "delay", "backoff", "max_delay",
                             "stop_status", "stop_msgs"))

    def run(self, tmp=None, task_vars=None):
        super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        if not args.get("module"):
            raise AnsibleActionFail("retry_backoff: 'module' is required")
        try:
            delays = backoff_delays(int(args.get("retries", 4)), float(args.get("delay", 5)),
                                    float(args.get("backoff", 2)), float(args.get("max_delay", 60)))
        except (TypeError, ValueError) as exc:
            msg = f"retry_backoff: retries, delay, backoff, max_delay must be numbers: {exc}"
            raise AnsibleActionFail(msg) from exc
        stop_status = [int(s) for s in args.get("stop_status", [])]
        stop_msgs = [str(s) for s in args.get("stop_msgs", [])]
        module_args = dict(args.get("module_args") or {})
        slept: list[float] = []
        for attempt in range(len(delays) + 1):
            result = self._execute_module(module_name=args["module"], module_args=module_args,
                                          task_vars=task_vars)
            last = attempt == len(delays)
            if not result.get("failed") or last or is_permanent(result, stop_status, stop_msgs):
                break
            time.sleep(delays[attempt])
            slept.append(delays[attempt])
        result["attempts"] = attempt + 1
        result["delays"] = slept
        return result
