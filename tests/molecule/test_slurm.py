"""Slurm: the 4-node Molecule scenario (controller + slurmdbd on MariaDB, 2 configless compute
nodes from the Debian packages, and a login node whose Slurm lies under /opt/slurm as on
HyperPod/ParallelCluster images, in systemd containers, pyxis on all), the role's inventory checks,
which must refuse a bad cluster description before any host changes, and the render of an
Amazon Linux 2023 cluster with HA controllers (no AL2023 machine runs here).

pyxis itself cannot be downloaded here: its source comes from the TEST FIXTURE mirror
(tests/fixtures/mirror/payloads/pyxis, a real SPANK plugin that only records --container-image),
so the build against Slurm's headers, the install and the plugstack.conf wiring are what is tested,
not containers (enroot is not run)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO, VENV_BIN, ansible_env, leaked, run, run_playbook

sys.path.insert(0, str(REPO / "tests" / "fixtures" / "mirror"))
import build_mirror  # noqa: E402

PLAYBOOK = "tests/molecule/playbooks/slurm_validate.yml"
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
         "slurm_node_addr": "localhost"}


@pytest.mark.slow
def test_slurm_scenario(tmp_path):
    mirror = tmp_path / "mirror"
    build_mirror.build(mirror, REPO / "stack" / "versions.yml", only={"pyxis"})
    env = ansible_env(AWSOME_MIRROR_DIR=str(mirror),
                      AWSOME_MIRROR_OVERLAY=str(mirror / "mirror_versions.yml"))
    # Measured 15 to 25+ min on 2 cores while other Molecule scenarios ran beside it.
    proc = run([str(VENV_BIN / "molecule"), "test", "-s", "slurm"], env=env, timeout=2700)
    assert proc.returncode == 0, proc.stdout[-8000:]
    out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)  # molecule colours its own lines
    assert re.search(r"idempotence\W+Executed: Successful", out), out[-4000:]
    assert re.search(r"verify\W+Executed: Successful", out), out[-4000:]
    assert "slurm-ctl" in proc.stdout and "failed=1" not in proc.stdout
    # The accounting database password the role generated on the controller shows nowhere in the output.
    secret = Path(env.get("HOME") or Path.home()) / ".ansible/awsome-secrets/molecule/slurmdbd_db"
    password = secret.read_text().split()[0]
    assert len(password) == 32 and not leaked({"slurmdbd password": password}, proc.stdout)


def _inventory(tmp_path, groups: dict[str, list[str]], **hostvars) -> str:
    children = {g: {"hosts": {h: dict(LOCAL, **hostvars.get(h, {})) for h in hosts}}
                for g, hosts in groups.items()}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"children": children}}))
    return str(path)


def _validate(tmp_path, inventory: str, *extra: str):
    home = tmp_path / "home"
    home.mkdir()
    proc = run_playbook(PLAYBOOK, "--tags", "slurm_validate", *extra, inventory=inventory,
                        env=ansible_env(HOME=str(home)), timeout=300)
    # Nothing changed anywhere: every host's recap says changed=0 and no secret was generated.
    assert re.findall(r"changed=(\d+)", proc.stdout), proc.stdout[-3000:]
    assert set(re.findall(r"changed=(\d+)", proc.stdout)) == {"0"}, proc.stdout[-3000:]
    assert not (home / ".ansible" / "awsome-secrets").exists()
    return proc


BAD = [
    ({"slurm_compute": ["cn1"]}, {}, [],
     "no Slurm controller: inventory group 'slurm_controller' is empty or missing"),
    ({"slurm_controller": ["ctl1", "ctl2"], "slurm_compute": ["cn1"]}, {}, [],
     "2 controllers (ctl1, ctl2) in 'slurm_controller' but slurm_controller_ha is false"),
    ({"slurm_controller": ["ctl1", "ctl2"], "slurm_compute": ["cn1"]}, {}, ["-e", "slurm_controller_ha=true"],
     "slurm_controller_ha with 2 controllers needs slurm_state_save_location"),
    ({"slurm_controller": ["ctl"], "slurm_compute": ["cn1", "cn-nowhere.invalid"]},
     {"cn-nowhere.invalid": {"slurm_node_addr": "cn-nowhere.invalid"}}, [],
     "Slurm node name(s) cn-nowhere.invalid do not resolve on ctl"),
    ({"slurm_controller": ["ctl"], "slurm_compute": ["cn1"]}, {},
     ["-e", '{"slurm_partitions": [{"name": "cpu", "group": "slurm_compute"},'
            ' {"name": "gpu", "group": "gpu_nodes"}]}'],
     "partition 'gpu' has no nodes: inventory group 'gpu_nodes' is empty or missing"),
]


@pytest.mark.parametrize(("groups", "hostvars", "extra", "message"), BAD,
                         ids=["no-controller", "two-controllers", "ha-without-shared-state", "unresolvable",
                              "empty-partition"])
def test_bad_inventory_fails_before_changes(tmp_path, groups, hostvars, extra, message):
    proc = _validate(tmp_path, _inventory(tmp_path, groups, **hostvars), *extra)
    assert proc.returncode != 0
    assert message in proc.stdout.replace("\n", " "), proc.stdout[-3000:]


def test_good_inventory_passes(tmp_path):
    groups = {"slurm_controller": ["ctl1", "ctl2"], "slurm_compute": ["cn1", "cn2"], "slurm_login": ["login"]}
    proc = _validate(tmp_path, _inventory(tmp_path, groups), "-e", "slurm_controller_ha=true",
                     "-e", "slurm_state_save_location=/fsx/slurm/state")
    assert proc.returncode == 0, proc.stdout[-3000:]


# Amazon Linux 2023, which no machine here runs: the role's OS data and templates are resolved for it
# with connection local and the facts given as the hostvar fake_facts (--tags slurm_render writes only
# slurm_render_dir/<host>.yml on the controller). NO Amazon Linux 2023 or EL node runs Slurm in
# these tests.
# fake_facts keys carry the ansible_ prefix so that both ansible_facts.<key> (the shared preflight)
# and the ansible_<key> variables (the role's templates) hold them.
AL2023 = {"fake_facts": {"ansible_os_family": "RedHat", "ansible_distribution": "Amazon",
                         "ansible_distribution_version": "2023", "ansible_distribution_major_version": "2023",
                         "ansible_architecture": "x86_64", "ansible_pkg_mgr": "dnf",
                         "ansible_memtotal_mb": 31000,
                         "ansible_processor_vcpus": 8, "ansible_processor_count": 1,
                         "ansible_processor_cores": 4, "ansible_processor_threads_per_core": 2}}


def test_render_al2023_with_ha_controllers(tmp_path):
    """Two HA controllers sharing StateSaveLocation, two compute nodes and a login node on Amazon
    Linux 2023: packages, paths and files are that platform's; both SlurmctldHost lines, in order."""
    hosts = ["ctl1", "ctl2", "cn1", "cn2", "login1"]
    hostvars = {h: dict(AL2023, slurm_node_addr=f"127.0.1.{i}") for i, h in enumerate(hosts, 1)}
    groups = {"slurm_controller": ["ctl1", "ctl2"], "slurm_compute": ["cn1", "cn2"],
              "slurm_login": ["login1"]}
    out = tmp_path / "render"
    home = tmp_path / "home"
    home.mkdir()
    proc = run_playbook(PLAYBOOK, "--tags", "slurm_render", "-e", f"slurm_render_dir={out}",
                        "-e", "slurm_controller_ha=true", "-e", "slurm_state_save_location=/fsx/slurm/state",
                        inventory=_inventory(tmp_path, groups, **hostvars), env=ansible_env(HOME=str(home)),
                        timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert not (home / ".ansible" / "awsome-secrets").exists()   # no secret made for a render
    host = {h: yaml.safe_load((out / f"{h}.yml").read_text()) for h in hosts}

    assert host["ctl1"]["os_vars"] == "Amazon-2023 (RedHat family)"
    assert host["ctl1"]["packages"] == ["slurm-slurmctld", "slurm", "slurm-slurmdbd", "mariadb105-server",
                                        "python3-PyMySQL"]
    assert host["ctl2"]["packages"] == ["slurm-slurmctld", "slurm"]
    assert host["cn1"]["packages"] == ["slurm-slurmd", "slurm"]
    assert host["login1"]["packages"] == ["slurm"]
    assert host["ctl1"]["services"] == ["slurmctld", "mariadb", "slurmdbd"]
    assert host["cn1"]["services"] == ["slurmd"]
    assert host["ctl1"]["preinstalled"] is False and host["ctl1"]["user"] == "slurm"
    assert host["cn1"]["paths"] == {
        "conf_dir": "/etc/slurm", "bin_dir": "/usr/bin", "sbin_dir": "/usr/sbin",
        "state_dir": "/fsx/slurm/state", "spool_dir": "/var/spool/slurm/d", "log_dir": "/var/log/slurm",
        "slurmd_env_file": "/etc/sysconfig/slurmd", "mariadb_socket": "/var/lib/mysql/mysql.sock"}

    # Controllers and the login node hold the same slurm.conf: both controllers in order, the
    # shared state, accounting on the first controller, one NodeName line per compute node.
    conf = host["ctl1"]["files"]["/etc/slurm/slurm.conf"].splitlines()
    assert [line for line in conf if line.startswith("SlurmctldHost=")] == [
        "SlurmctldHost=ctl1(127.0.1.1)", "SlurmctldHost=ctl2(127.0.1.2)"]
    assert "StateSaveLocation=/fsx/slurm/state" in conf
    assert "AccountingStorageHost=127.0.1.1" in conf
    for node, addr in (("cn1", 3), ("cn2", 4)):
        assert (f"NodeName={node} NodeAddr=127.0.1.{addr} CPUs=8 Boards=1 SocketsPerBoard=1 CoresPerSocket=4 "
                "ThreadsPerCore=2 RealMemory=29976 State=UNKNOWN") in conf
    assert "PartitionName=compute Nodes=cn1,cn2 Default=YES MaxTime=INFINITE State=UP" in conf
    for holder in ("ctl2", "login1"):
        assert host[holder]["files"]["/etc/slurm/slurm.conf"].splitlines() == conf
    assert sorted(host["ctl1"]["files"]) == [
        "/etc/logrotate.d/awsome-slurm", "/etc/slurm/cgroup.conf", "/etc/slurm/gres.conf",
        "/etc/slurm/slurm.conf", "/etc/slurm/slurmdbd.conf"]
    dbd = host["ctl1"]["files"]["/etc/slurm/slurmdbd.conf"]
    assert "StorageLoc=slurm_acct_db" in dbd and "DbdHost=ctl1" in dbd
    assert "/etc/slurm/slurmdbd.conf" not in host["ctl2"]["files"]
    # Compute nodes are configless, pointed at both controllers through EL's slurmd environment file.
    assert sorted(host["cn1"]["files"]) == ["/etc/logrotate.d/awsome-slurm", "/etc/sysconfig/slurmd"]
    env = host["cn1"]["files"]["/etc/sysconfig/slurmd"]
    assert 'SLURMD_OPTIONS="--conf-server 127.0.1.1:6817,127.0.1.2:6817"' in env


def test_every_os_vars_file_defines_the_same_keys():
    """The OS data files (Debian, EL, AL2023, preinstalled) stay in step: one missing key would
    only fail on that platform."""
    vars_dir = REPO / "roles" / "slurm" / "vars"
    keys = {f.name: set(yaml.safe_load(f.read_text()))
            for f in vars_dir.glob("*.yml") if f.name != "main.yml"}
    os_keys = keys.pop("preinstalled.yml")
    assert set(keys) >= {"Debian.yml", "RedHat.yml", "Amazon-2023.yml"}
    assert all(k == keys["Debian.yml"] for k in keys.values()), keys
    # A preinstalled Slurm overrides the install and layout keys only (MariaDB and the slurmd
    # environment file stay the OS's).
    assert os_keys < keys["Debian.yml"], os_keys - keys["Debian.yml"]
