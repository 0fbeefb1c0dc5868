"""The versions manifest's compatibility check (plugins/module_utils/stack_compat.py) and its rule table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import load_module

REPO = Path(__file__).resolve().parents[2]
stack_compat = load_module(REPO / "plugins" / "module_utils" / "stack_compat.py")

MANIFEST = yaml.safe_load((REPO / "stack" / "versions.yml").read_text())
RULES = yaml.safe_load((REPO / "stack" / "compat.yml").read_text())["stack_compat_rules"]


@pytest.mark.parametrize(("text", "parsed"), [
    ("570.172.08", (570, 172, 8)),
    ("2.26.5-1", (2, 26, 5, 1)),
    ("1.14.2-aws", (1, 14, 2)),
    ("12.8.0", (12, 8)),
    ("13", (13,)),
])
def test_parse_version(text, parsed):
    assert stack_compat.parse_version(text) == parsed


@pytest.mark.parametrize(("version", "spec", "expected"), [
    ("12.8.1", ">=12.8,<12.9", True),
    ("12.9.0", ">=12.8,<12.9", False),
    ("12.8", ">=12.8.0", True),  # 12.8 == 12.8.0
    ("570.124.06", ">=570.124.06", True),
    ("570.86.10", ">=570.124.06", False),
    ("2.26.5-1", "==2.26.5-1", True),
    ("1.0", "!=1.0.0", False),
])
def test_matches(version, spec, expected):
    assert stack_compat.matches(version, spec) is expected


@pytest.mark.parametrize(("version", "spec"), [("latest", ">=1"), ("1.0", "~=1.0"), ("1.0", ">=")])
def test_bad_specs_raise(version, spec):
    with pytest.raises(stack_compat.SpecError):
        stack_compat.matches(version, spec)


def test_pinned_manifest_is_compatible_in_every_profile():
    versions = MANIFEST["stack_versions"]
    for profile, components in MANIFEST["stack_profiles"].items():
        assert stack_compat.check(versions, RULES, components) == [], profile
    assert stack_compat.manifest_errors(versions, MANIFEST["stack_artifacts"]) == []


def test_cuda_newer_than_driver_names_both_versions():
    versions = {**MANIFEST["stack_versions"], "nvidia_driver": "560.35.03", "fabricmanager": "560.35.03"}
    assert stack_compat.check(versions, RULES) == [
        "incompatible stack: cuda 12.8.1 needs nvidia_driver >=570.124.06, but nvidia_driver is 560.35.03"
        " (rule cuda-12.8.1-driver)"]


def test_old_aws_ofi_nccl_for_nccl():
    versions = {**MANIFEST["stack_versions"], "nccl": "2.23.4-1", "aws_ofi_nccl": "1.11.0"}
    assert stack_compat.check(versions, RULES) == [
        "incompatible stack: nccl 2.23.4-1 needs aws_ofi_nccl >=1.13.0, but aws_ofi_nccl is 1.11.0"
        " (rule ofi-nccl-2.23)"]


def test_fabricmanager_must_match_driver():
    versions = {**MANIFEST["stack_versions"], "fabricmanager": "570.133.20"}
    errors = stack_compat.check(versions, RULES)
    assert errors == ["incompatible stack: fabricmanager 570.133.20 vs nvidia_driver 570.172.08"
                      " must be the same version (rule fabricmanager-driver)"]


def test_rules_only_apply_to_the_profile():
    # A CPU node carries no driver or CUDA: the CUDA/driver rules must not fire on stale pins.
    versions = {**MANIFEST["stack_versions"], "nvidia_driver": "470.0.0"}
    assert stack_compat.check(versions, RULES, MANIFEST["stack_profiles"]["cpu"]) == []
    assert stack_compat.check(versions, RULES, MANIFEST["stack_profiles"]["gpu"]) != []


def test_missing_component_skips_the_rule():
    assert stack_compat.check({"cuda": "12.8.1"}, RULES) == []


def test_rule_without_require_or_same_is_rejected():
    with pytest.raises(stack_compat.SpecError, match="rule broken: needs 'require' or 'same'"):
        stack_compat.check({"a": "1"}, [{"id": "broken", "when": {"a": ">=1"}}])


def test_manifest_errors_names_the_component():
    cuda = {**MANIFEST["stack_artifacts"]["cuda"], "version": "12.9.0"}
    artifacts = {**MANIFEST["stack_artifacts"], "cuda": cuda}
    assert stack_compat.manifest_errors(MANIFEST["stack_versions"], artifacts) == [
        "stack_artifacts.cuda.version is 12.9.0 but stack_versions.cuda is 12.8.1"]


def test_every_rule_is_well_formed():
    ids = [rule["id"] for rule in RULES]
    assert len(ids) == len(set(ids)), "duplicate rule ids"
    known = set(MANIFEST["stack_versions"])
    for rule in RULES:
        named = set(rule.get("when", {})) | set(rule.get("require", {})) | set(rule.get("same", []))
        assert named <= known, (rule["id"], named - known)
        for spec in [*rule.get("when", {}).values(), *rule.get("require", {}).values()]:
            stack_compat.matches("1.0", spec)  # parses, or raises SpecError


def test_filter_plugin_wraps_spec_errors():
    from ansible.errors import AnsibleFilterError

    from ansible_collections.awsome.distributed_training.plugins.filter.stack import FilterModule

    filters = FilterModule().filters()
    assert filters["version_matches"]("570.172.08", ">=560")
    assert filters["stack_compat_errors"](MANIFEST["stack_versions"], RULES) == []
    with pytest.raises(AnsibleFilterError, match="version_matches: not a version: 'latest'"):
        filters["version_matches"]("latest", ">=1")
