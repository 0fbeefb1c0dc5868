#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection with no network except PyPI.
#   tests/sanity/run_sanity.sh [ansible-test sanity arguments, e.g. --test pep8]
# ansible-test wants the collection at .../ansible_collections/<ns>/<name> as a git work tree, the
# collections it depends on beside it, and pip bootstrapped in its venvs from a script it downloads
# from a host we cannot reach. So, all under .state/sanity (kept between runs, so a second run only
# re-copies the tree):
#   venv/        ansible-core from Debian's python3 (its venvs have ensurepip)
#   home/        HOME for ansible-test: the pip bootstrap stand-in and the per-test venvs it caches
#   run.XXXXXX/ansible_collections/awsome/distributed_training   a fresh copy of the tracked tree, one
#                                                                per run (two runs at once do not delete
#                                                                each other's), removed at the end
#   run.XXXXXX/ansible_collections/<dep ns>/<dep name>           links to the controller venv's bundled
#                                                                copies of galaxy.yml's dependencies
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state=$repo/.state/sanity
core_version=$("$repo/.venv/bin/python" -c 'import ansible; print(ansible.__version__)')
bundled=$("$repo/.venv/bin/python" -c 'import ansible, os; print(os.path.join(os.path.dirname(os.path.dirname(ansible.__file__)), "ansible_collections"))')
mkdir -p "$state/home/.ansible/test/cache"
run_dir=$(mktemp -d "$state/run.XXXXXX")
trap 'rm -rf "$run_dir"' EXIT
root=$run_dir/ansible_collections
coll=$root/awsome/distributed_training
mkdir -p "$root/awsome"

if [[ ! -x $state/venv/bin/ansible-test ]] || [[ $("$state/venv/bin/ansible-test" --version) != *" $core_version" ]]; then
    rm -rf "$state/venv"
    /usr/bin/python3 -m venv "$state/venv"
    "$state/venv/bin/pip" install -q --disable-pip-version-check "ansible-core==$core_version"
fi

# ansible-test bootstraps pip in every venv it makes with get-pip.py, cached here under this name.
cat > "$state/home/.ansible/test/cache/get_pip_24_2.py" <<'PY'
"""Offline stand-in for get-pip.py: pip from ensurepip, then the requested pip from the index."""
import ensurepip
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--upgrade", *args]))
PY

# The dependencies, as the controller has them (the `ansible` package bundles them).
"$repo/.venv/bin/python" - "$repo/galaxy.yml" "$bundled" "$root" <<'PY'
import os, sys, yaml
galaxy, bundled, root = sys.argv[1:]
for dep in yaml.safe_load(open(galaxy))["dependencies"]:
    ns, name = dep.split(".")
    os.makedirs(os.path.join(root, ns), exist_ok=True)
    link = os.path.join(root, ns, name)
    if not os.path.islink(link):
        os.symlink(os.path.join(bundled, ns, name), link)
PY

# A fresh copy of what git tracks (plus new files not ignored), as its own git work tree.
rm -rf "$coll"
mkdir -p "$coll"
(cd "$repo" && git ls-files -z -co --exclude-standard | xargs -0 -I{} sh -c '[ -e "{}" ] || [ -L "{}" ] && printf "%s\0" "{}"' ) \
    | rsync -a --from0 --files-from=- "$repo/" "$coll/"
git -C "$coll" init -q
git -C "$coll" add -A

cd "$coll"
HOME=$state/home "$state/venv/bin/ansible-test" sanity --venv --python 3.11 "$@"
