"""Filters for the versions manifest: `stack_compat_errors`, `stack_manifest_errors`, `version_matches`."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.awsome.distributed_training.plugins.module_utils import stack_compat


def stack_compat_errors(versions, rules, components=None):
    """List of messages, one per violated rule in `rules` (empty when compatible)."""
    try:
        return stack_compat.check(dict(versions), list(rules), components)
    except stack_compat.SpecError as exc:
        raise AnsibleFilterError(f"stack_compat_errors: {exc}") from exc


def stack_manifest_errors(versions, artifacts):
    """List of inconsistencies between stack_versions and stack_artifacts."""
    return stack_compat.manifest_errors(dict(versions), dict(artifacts))


def version_matches(version, spec):
    """True when `version` satisfies `spec` (e.g. '>=12.8,<12.9')."""
    try:
        return stack_compat.matches(version, spec)
    except stack_compat.SpecError as exc:
        raise AnsibleFilterError(f"version_matches: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"stack_compat_errors": stack_compat_errors, "version_matches": version_matches,
                "stack_manifest_errors": stack_manifest_errors}
