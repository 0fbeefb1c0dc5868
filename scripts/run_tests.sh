#!/usr/bin/env bash
# `make test`: the whole suite as two pytest sessions side by side, so that the Molecule scenarios
# (mostly waiting on podman and apt inside containers) overlap the simulated-cluster tests (mostly
# torch and ssh). Two sessions rather than pytest-xdist: the cluster is one per machine and every
# test that uses it must share one session (tests/integration/conftest.py), and xdist 3.8's work
# groups do not take effect under pytest 9. The unit tests ride with lint and Molecule: the cluster
# session is the longer one. Extra arguments go to both sessions.
set -uo pipefail
cd "$(dirname "$0")/.."
log=.state/test-integration.log
mkdir -p .state

# Integration tests that need no simulated cluster (moto, Prometheus, health checks) ride with the
# foreground session; the cluster's users, the image bake and the per-case environments (which the
# catalogue's cluster test builds too) stay here.
quick=(tests/integration/test_aws_errors.py tests/integration/test_aws_infra.py
       tests/integration/test_aws_stage_data.py tests/integration/test_observability.py
       tests/integration/test_validate.py)
pytest tests/integration "${quick[@]/#/--ignore=}" "$@" > "$log" 2>&1 &
background=$!
# A stopped `make test` stops both sessions.
trap 'kill "$background" 2>/dev/null' INT TERM

pytest tests/lint tests/molecule tests/unit "${quick[@]}" "$@"
foreground_rc=$?
wait "$background"
background_rc=$?

echo
echo "=================== tests/integration (ran alongside; log: $log) ==================="
cat "$log"
echo "lint, Molecule, unit and cluster-free integration: exit $foreground_rc; tests/integration: exit $background_rc"
[ "$foreground_rc" -eq 0 ] && [ "$background_rc" -eq 0 ]
