"""containers.podman.podman with pipelining, for the Molecule scenarios of this repository.

The upstream plugin runs `podman exec` without `-i`, so it cannot feed a module on stdin and turns
pipelining off: every module then costs a temporary directory, a file copy, an exec and a cleanup,
i.e. four or five podman processes. Passing stdin (`podman exec -i`) lets Ansible pipeline: one
`podman exec` per module. The container's file system is mounted (`podman mount`) only for the
tasks that transfer files (template, copy), not for every task.
Selected per scenario with ANSIBLE_CONNECTION_PLUGINS and ansible_connection: podman_pipe.
"""

from __future__ import annotations

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect

from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection

DOCUMENTATION = """
    name: podman_pipe
    short_description: podman exec with stdin, so that Ansible can pipeline modules
    description:
      - containers.podman.podman plus pipelining (enable it with ANSIBLE_PIPELINING=True).
    options:
      remote_addr:
        description: The container's name or id.
        default: inventory_hostname
        vars:
          - name: ansible_host
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description: User that runs commands in the container.
        vars:
          - name: ansible_user
      podman_extra_args:
        description: Extra arguments of every podman command.
        default: ''
        vars:
          - name: ansible_podman_extra_args
      podman_executable:
        description: The podman executable.
        default: podman
        vars:
          - name: ansible_podman_executable
"""


class Connection(PodmanConnection):
    transport = "podman_pipe"
    has_pipelining = True

    def _connect(self):
        ConnectionBase._connect(self)
        self._connected = True
        return self

    def _mount(self):
        if self._mount_point is None:
            PodmanConnection._connect(self)

    def put_file(self, in_path, out_path):
        self._mount()
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        self._mount()
        super().fetch_file(in_path, out_path)

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        args = ["exec", "-i"] if in_data is not None else ["exec"]
        if self.user:
            args += ["--user", self.user]
        return self._podman(args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)
