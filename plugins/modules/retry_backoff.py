"""Documentation of the retry_backoff action plugin (plugins/action/retry_backoff.py does the work)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: retry_backoff
short_description: Run one module, retrying transient failures with a growing delay
description:
  - Ansible's C(until)/C(retries)/C(delay) waits the same time between every attempt; a mirror that
    is briefly overloaded recovers better when clients back off. The artifact role runs its
    downloads through this action.
  - Failures the caller names as permanent (a status code in I(stop_status), a message containing
    one of I(stop_msgs)) stop at once.
  - An action plugin; it runs I(module) on the target host.
options:
  module: {description: FQCN of the module to run., type: str, required: true}
  module_args: {description: Arguments for I(module)., type: dict, default: {}}
  retries: {description: Retries after the first attempt., type: int, default: 4}
  delay: {description: Seconds before the first retry., type: float, default: 5}
  backoff: {description: Factor each further delay grows by (I(delay) * I(backoff) ** n)., type: float, default: 2}
  max_delay: {description: Cap on one delay in seconds., type: float, default: 60}
  stop_status: {description: Status codes that are not retried., type: list, elements: int, default: []}
  stop_msgs: {description: Substrings of the failure message that are not retried., type: list, elements: str, default: []}
author: awsome.distributed_training developers (@awsome)
"""

EXAMPLES = r"""
- name: Download with backoff, giving up at once on a 404 or a checksum mismatch
  awsome.distributed_training.retry_backoff:
    module: ansible.builtin.get_url
    module_args:
      url: https://mirror.example.invalid/efa/aws-efa-installer-1.43.1.tar.gz
      dest: /var/cache/awsome/aws-efa-installer-1.43.1.tar.gz
      checksum: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    stop_status: [404]
    stop_msgs: [checksum]
"""

RETURN = r"""
attempts: {description: Attempts made., returned: always, type: int}
delays: {description: Seconds slept before each retry., returned: always, type: list, elements: float}
"""
