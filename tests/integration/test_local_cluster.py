"""The embedded simulated cluster (playbooks/local_cluster.yml): real namespaces, sshd and SSH.

The session fixture `local_cluster` (conftest.py) builds the 2-node cluster these tests inspect; the
test that removes it is ordered last in the session, after every other user of the fixture.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import REPO, VENV_BIN, ansible_env, run, run_playbook

pytestmark = pytest.mark.slow

PLAYBOOK = "playbooks/local_cluster.yml"
STATE = REPO / ".state" / "cluster"  # the fixture's cluster: the default state dir
NODES = ["node1", "node2"]
RECAP = re.compile(r"^localhost\s*:.*\bchanged=(\d+).*\bfailed=(\d+)", re.MULTILINE)

# Resolves every node by name from inside a node and reads its sshd banner. No "=" in it: ansible
# would take key=value words of the command line as module arguments.
PROBE = ("import socket,sys\n"
         "for n in sys.argv[1:]:\n"
         "    with socket.create_connection((n, 22), 5) as s:\n"
         "        print(n, socket.gethostbyname(n), s.recv(64).decode().strip())\n")


def cluster(*extra: str) -> subprocess.CompletedProcess:
    return run_playbook(PLAYBOOK, *[arg for value in extra for arg in ("-e", value)], timeout=600)


def changed(proc: subprocess.CompletedProcess) -> int:
    assert proc.returncode == 0, proc.stdout[-6000:]
    recap = RECAP.search(proc.stdout)
    assert recap, proc.stdout[-3000:]
    return int(recap.group(1))


def adhoc(inventory: Path, *args: str) -> dict[str, str]:
    """Run an ad-hoc command on every node; returns node -> stdout."""
    env = ansible_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    cmd = [str(VENV_BIN / "ansible"), "-i", str(inventory), "cluster", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, text=True, capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    hosts = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]
    return {node: result["stdout"] for node, result in hosts.items()}


def netns_names() -> list[str]:
    return sorted(line.split()[0] for line in run(["ip", "netns", "list"], check=True).stdout.splitlines())


def alive(pid: int) -> bool:
    """True for a running process; a zombie (PID 1 here does not reap) is dead."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and alive(int(proc.name)):
            try:
                if text.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_inventory_describes_the_nodes(local_cluster):
    inv = yaml.safe_load(local_cluster.read_text())["all"]["children"]["cluster"]
    assert list(inv["hosts"]) == NODES
    assert [h["ansible_host"] for h in inv["hosts"].values()] == ["10.77.0.11", "10.77.0.12"]
    assert Path(inv["vars"]["ansible_ssh_private_key_file"]).is_file()
    assert inv["vars"]["launcher_work_root"] == str(STATE / "work")


def test_every_node_answers_with_its_own_name(local_cluster):
    out = adhoc(local_cluster, "-m", "ansible.builtin.command", "-a", "hostname")
    assert out == {node: node for node in NODES}


def test_nodes_reach_each_other_by_name(local_cluster):
    out = adhoc(local_cluster, "-m", "ansible.builtin.command", "-a",
                f"/usr/bin/python3 -c '{PROBE}' {' '.join(NODES)}")
    assert sorted(out) == NODES
    for node, text in out.items():
        lines = sorted(text.splitlines())
        assert len(lines) == len(NODES), f"{node}: {text}"
        for i, line in enumerate(lines, start=1):
            name, ip, banner = line.split(" ", 2)
            assert (name, ip) == (f"node{i}", f"10.77.0.{10 + i}"), f"{node}: {line}"
            assert banner.startswith("SSH-2.0-OpenSSH"), f"{node}: {line}"


def test_host_keys_are_checked_and_a_changed_one_is_refused(local_cluster, tmp_path):
    """The inventory makes ssh check every node's host key against the known_hosts file the cluster
    wrote from the keys it generated. A changed key is made on the controller's side (node2's line in
    a copy of that file gets another key): to ssh that is the same as node2 showing another key, as a
    man in the middle would. node2 is refused, by name; node1 still answers."""
    cluster_vars = yaml.safe_load(local_cluster.read_text())["all"]["children"]["cluster"]["vars"]
    args = cluster_vars["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in args.split(), args
    known = Path(re.search(r"UserKnownHostsFile=(\S+)", args).group(1))
    entries = {line.split()[0]: line.split()[1:3] for line in known.read_text().splitlines()
               if line and not line.startswith("#")}
    for i, node in enumerate(NODES, start=1):
        host_key = (STATE / "nodes" / node / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        assert entries[f"{node},10.77.0.{10 + i}"] == host_key, entries

    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = (tmp_path / "other.pub").read_text().split()[:2]
    changed_file = tmp_path / "known_hosts"
    changed_file.write_text("".join(f"{names} {' '.join(other if names.startswith('node2,') else key)}\n"
                                    for names, key in entries.items()))
    # No shared connection: a master opened earlier would skip the key exchange.
    env = ansible_env(ANSIBLE_SSH_ARGS="-o ControlMaster=no")
    strict = f"-o UserKnownHostsFile={changed_file} -o StrictHostKeyChecking=yes"
    checked = {"ansible_control_path_dir": str(tmp_path), "ansible_ssh_common_args": strict}
    proc = subprocess.run([str(VENV_BIN / "ansible"), "-i", str(local_cluster), "cluster", "-m",
                           "ansible.builtin.ping", "-e", json.dumps(checked)],
                          cwd=REPO, env=env, text=True, capture_output=True, timeout=120, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert re.search(r"^node1 \| SUCCESS", out, re.MULTILINE), out
    assert re.search(r"^node2 \| UNREACHABLE!", out, re.MULTILINE), out
    assert "Host key for 10.77.0.12 has changed and you have requested strict checking" in out, out
    assert "Host key verification failed" in out, out


def test_creating_again_changes_nothing(local_cluster):
    proc = cluster("cluster_state=present", f"cluster_nodes={len(NODES)}")
    assert changed(proc) == 0, proc.stdout[-6000:]


def inventory_nodes(inventory: Path) -> list[str]:
    return list(yaml.safe_load(inventory.read_text())["all"]["children"]["cluster"]["hosts"])


def test_growing_adds_a_node_and_shrinking_removes_it(local_cluster):
    assert changed(cluster("cluster_state=present", "cluster_nodes=3")) > 0
    assert inventory_nodes(local_cluster) == [*NODES, "node3"]
    # The running nodes see the new one: the shared hosts file is rewritten in place.
    out = adhoc(local_cluster, "-m", "ansible.builtin.command", "-a", "getent ahostsv4 node3")
    assert all(text.split()[0] == "10.77.0.13" and "node3" in text for text in out.values()), out
    assert set(out) == {*NODES, "node3"}

    assert changed(cluster("cluster_state=present", f"cluster_nodes={len(NODES)}")) > 0
    assert inventory_nodes(local_cluster) == NODES
    assert "node3" not in netns_names()
    assert not Path("/sys/class/net/dtv-node3").exists()
    assert not (STATE / "run" / "node3.holder.pid").exists()
    out = adhoc(local_cluster, "-m", "ansible.builtin.command", "-a", "cat /etc/hosts")
    assert all("node2" in text and "node3" not in text for text in out.values()), out


@pytest.mark.parametrize(("extra", "names"), [
    (["cluster_nodes=0"], ["cluster_nodes", "'0'"]),
    (["cluster_nodes=9"], ["cluster_nodes", "'9'"]),
    (["cluster_nodes=abc"], ["cluster_nodes", "abc"]),
    (["cluster_state=gone"], ["cluster_state", "gone"]),
])
def test_bad_requests_fail_before_anything_is_created(tmp_path, extra, names):
    state = tmp_path / "cluster"
    before = netns_names()
    proc = cluster(*extra, f"cluster_state_dir={state}")
    assert proc.returncode != 0
    # One line of the error names both the setting and the bad value.
    assert any(all(name in line for name in names) for line in proc.stdout.splitlines()), proc.stdout[-3000:]
    assert "changed=0" in proc.stdout
    assert not state.exists()
    assert netns_names() == before


@pytest.mark.destroys_local_cluster
def test_absent_leaves_nothing_behind_and_twice_changes_nothing(local_cluster):
    pids = [int(p.read_text().split()[0]) for p in (STATE / "run").glob("*.pid")]
    assert len(pids) == 2 * len(NODES) and all(alive(pid) for pid in pids)

    assert changed(cluster("cluster_state=absent")) > 0

    assert not set(NODES) & set(netns_names())
    assert not Path("/sys/class/net/dtbr0").exists()
    assert not [pid for pid in pids if alive(pid)]
    # sshd's command line names its config, which lives in the state dir.
    assert processes_mentioning(str(STATE)) == []
    assert "/run/netns/node" not in Path("/proc/self/mountinfo").read_text()
    assert not (STATE / "inventory.yml").exists()
    assert not (STATE / "run").exists()

    assert changed(cluster("cluster_state=absent")) == 0
