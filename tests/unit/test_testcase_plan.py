"""The manifest rules the launcher applies before anything reaches a node."""

import pytest
import yaml

from ansible_collections.awsome.distributed_training.plugins.module_utils.testcase import (
    ManifestError,
    coerce,
    known_cases,
    load_manifest,
    resolve,
    to_cli,
)

MANIFEST = {
    "name": "demo",
    "entrypoint": "demo/src/train.py",
    "code": ["common", "demo/src"],
    "launch": {"checkpoint_dir": True},
    "parameters": {
        "steps": {"type": "int", "default": 10, "min": 1},
        "lr": {"type": "float", "default": 0.001},
        "model": {"type": "str", "default": "tiny", "choices": ["tiny", "big"]},
        "compile": {"type": "bool", "default": False},
    },
    "presets": {
        "cpu-tiny": {"resources": {"nodes": 2, "procs_per_node": 1, "accelerator": "cpu"},
                     "parameters": {"steps": 30}},
        "gpu": {"resources": {"nodes": 1, "procs_per_node": 4, "accelerator": "cuda"},
                "parameters": {"model": "big", "compile": True}},
    },
    "constraints": ["lr < 1", "steps >= 1"],
    "env": {"common": {"OMP_NUM_THREADS": 1}, "cuda": {"NCCL_NVLS_ENABLE": "0"}},
    "metrics": {"files": "metrics-rank*.jsonl"},
    "success": {"timeout_s": 120, "checks": ["all_ranks_reported", "loss_decreased"]},
}
HOSTS = ["node1", "node2", "node3"]


def plan(**kw):
    args = {"preset": "cpu-tiny", "hosts": HOSTS, "target": "cluster"} | kw
    return resolve(MANIFEST, **args)


def test_preset_defaults_and_overrides_merge_in_order():
    p = plan(params={"lr": "0.01"})
    assert p["params"] == {"steps": 30, "lr": 0.01, "model": "tiny", "compile": False}
    assert p["nodes"] == ["node1", "node2"] and p["head"] == "node1"
    assert p["world_size"] == 2 and p["timeout_s"] == 120
    assert p["env"] == {"OMP_NUM_THREADS": "1"}
    assert p["checkpoint_dir"] is True
    assert p["run_id"].startswith("demo-cpu-tiny-")


def test_nodes_are_chosen_in_name_order_whatever_the_inventory_order():
    p = plan(hosts=["node10", "node2", "node1"])
    assert p["nodes"] == ["node1", "node2"] and p["head"] == "node1"


def test_accelerator_env_and_cli_rendering():
    p = plan(preset="gpu")
    assert p["env"] == {"OMP_NUM_THREADS": "1", "NCCL_NVLS_ENABLE": "0"}
    assert p["world_size"] == 4
    assert p["args"] == ["--compile", "--lr", "0.001", "--model", "big", "--steps", "10"]
    assert to_cli({"compile": False}, MANIFEST["parameters"]) == ["--no-compile"]


@pytest.mark.parametrize(("kw", "message"), [
    ({"preset": "nope"}, "unknown preset 'nope' for demo (presets: cpu-tiny, gpu)"),
    ({"preset": None}, "no preset given for demo"),
    ({"nodes": 0}, "nodes must be between 1 and 64, got 0"),
    ({"nodes": 65}, "nodes must be between 1 and 64, got 65"),
    ({"nodes": "two"}, "nodes must be a whole number, got 'two'"),
    ({"nodes": 4}, "demo/cpu-tiny needs 4 node(s) but inventory group 'cluster' has 3"),
    ({"hosts": []}, "no nodes: inventory group 'cluster' is empty or missing"),
    ({"params": {"steps": "ten"}}, "parameter 'steps' must be int, got 'ten'"),
    ({"params": {"steps": 0}}, "parameter 'steps' must be >= 1, got 0"),
    ({"params": {"model": "huge"}}, "parameter 'model' must be one of ['tiny', 'big'], got 'huge'"),
    ({"params": {"bogus": 1}}, "unknown parameter(s) bogus for demo"),
    ({"params": "steps=3"}, "params must be a mapping"),
    ({"params": {"lr": 2}}, "parameters must satisfy lr < 1: got lr (2.0) < 1"),
])
def test_bad_requests_fail_with_one_line_naming_the_problem(kw, message):
    with pytest.raises(ManifestError) as err:
        plan(**kw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("spec", "value", "expected"), [
    ({"type": "bool"}, "yes", True), ({"type": "bool"}, "false", False), ({"type": "int"}, "7", 7),
    ({"type": "float"}, 3, 3.0), ({"type": "str"}, 5, "5"),
])
def test_coerce_accepts_command_line_strings(spec, value, expected):
    assert coerce("x", spec, value) == expected


@pytest.mark.parametrize(("spec", "value"), [({"type": "bool"}, "maybe"), ({"type": "int"}, True),
                                             ({"type": "int"}, 2.5), ({"type": "str"}, [1])])
def test_coerce_rejects_wrong_types(spec, value):
    with pytest.raises(ManifestError):
        coerce("x", spec, value)


def test_repository_manifests_are_valid(repo):
    cases = known_cases(str(repo / "test_cases"))
    assert {"fsdp", "ddp", "collectives", "picotron", "jax"} <= set(cases)
    for name in cases:
        manifest = load_manifest(str(repo / "test_cases"), name)
        for preset in manifest["presets"]:
            # Render-only cases are planned only for a render (a real launch is refused).
            p = resolve(manifest, preset=preset, hosts=[f"n{i}" for i in range(64)], target="all",
                        render_only="render_only" in manifest)
            assert p["world_size"] >= 1
            assert p["entrypoint"].endswith(".py") or p["launch_mode"] == "command"


def test_no_manifest_repeats_the_job_environment(repo):
    """NCCL/libfabric/NVLink-multicast settings have one owner, the nccl role's job environment
    (/etc/awsome/nccl.env, sourced by every launch): a manifest that sets one of its variables would
    override the cluster's own value on some cases and not others."""
    owned = set(yaml.safe_load((repo / "roles/nccl/defaults/main.yml").read_text())["nccl_env_defaults"])
    for name in known_cases(str(repo / "test_cases")):
        env = load_manifest(str(repo / "test_cases"), name).get("env") or {}
        repeated = owned & {key for block in env.values() for key in (block or {})}
        assert not repeated, f"{name} sets {sorted(repeated)}, which the job environment owns"


def test_unknown_test_case_lists_the_known_ones(repo):
    with pytest.raises(ManifestError, match=r"unknown test case 'nope' \(known: .*fsdp"):
        load_manifest(str(repo / "test_cases"), "nope")


def test_the_torch_profiler_switch_is_named_apart_from_the_image_profile(repo):
    """`torch_profiler` (was `profile`, which also named the image build profile): the old name fails
    in one line that lists the new one."""
    manifest = load_manifest(str(repo / "test_cases"), "fsdp")
    assert resolve(manifest, preset="cpu-tiny", params={"torch_profiler": True}, hosts=HOSTS,
                   target="cluster")["args"].count("--torch-profiler") == 1
    old = r"^unknown parameter\(s\) profile for fsdp \(known: .*torch_profiler"
    with pytest.raises(ManifestError, match=old):
        resolve(manifest, preset="cpu-tiny", params={"profile": True}, hosts=HOSTS, target="cluster")
