#!/usr/bin/env bash
# Give the collection's internal roles a leading underscore, across the tree (issue 13):
#   stack_manifest -> _stack         (the node-stack preflight, the one package install, the stack record)
#   artifact       -> _artifact      (every download: mirror or upstream, sha256, cache)
#   vendor_repo    -> _vendor_repo   (a signed vendor repository with pinned, held packages)
# Variable names do not change (stack_manifest_file, artifact_id, vendor_repo_name, ...): users
# set them. The roles keep refusing a play's direct call (tasks/refuse_direct.yml).
#   scripts/rename_internal_roles.sh          rename (git mv + edits), then run the lint tests
#   scripts/rename_internal_roles.sh --check  list the files that would change, change nothing
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
[[ "${1:-}" == "--check" ]] && check=true

declare -A RENAMES=([stack_manifest]=_stack [artifact]=_artifact [vendor_repo]=_vendor_repo)
DIRS=(roles playbooks molecule lifecycle tests docs packer)

for old in "${!RENAMES[@]}"; do
  [[ -d "roles/$old" ]] || { echo "roles/$old is missing (already renamed?)" >&2; exit 1; }
  [[ ! -e "roles/${RENAMES[$old]}" ]] || { echo "roles/${RENAMES[$old]} exists already" >&2; exit 1; }
done

# Tracked and untracked (not ignored) text files under the directories above.
mapfile -t files < <(git ls-files -co --exclude-standard -- "${DIRS[@]}" | while read -r f; do
  [[ -f "$f" ]] && grep -Iq . "$f" && echo "$f"; done)

# 1. Qualified names and paths, everywhere (Packer's HCL too):
#    awsome.distributed_training.<old> and roles/<old>, not followed by a name character.
# 2. The bare role name, everywhere but packer/ (its HCL has a local named stack_manifest):
#    only stack_manifest and vendor_repo, never followed by "_" (variables such as
#    stack_manifest_file keep their names) nor preceded by a name character or "." ;
#    "artifact" is an ordinary word (artifact_id, stack_artifacts): only step 1 renames it.
perl_expr='
  s/\bawsome\.distributed_training\.stack_manifest(?![\w])/awsome.distributed_training._stack/g;
  s/\bawsome\.distributed_training\.artifact(?![\w])/awsome.distributed_training._artifact/g;
  s/\bawsome\.distributed_training\.vendor_repo(?![\w])/awsome.distributed_training._vendor_repo/g;
  s{(?<![\w.])roles/stack_manifest(?![\w])}{roles/_stack}g;
  s{(?<![\w.])roles/artifact(?![\w])}{roles/_artifact}g;
  s{(?<![\w.])roles/vendor_repo(?![\w])}{roles/_vendor_repo}g;
'
bare_expr='
  s/(?<![\w.\/])stack_manifest(?![\w])/_stack/g;
  s/(?<![\w.\/])vendor_repo(?![\w])/_vendor_repo/g;
  s/`artifact`/`_artifact`/g;
'

changed=()
for f in "${files[@]}"; do
  expr="$perl_expr"
  [[ "$f" == packer/* ]] || expr="$perl_expr$bare_expr"
  if ! perl -0pe "$expr" "$f" | cmp -s - "$f"; then
    changed+=("$f")
    $check || perl -0pi -e "$expr" "$f"
  fi
done
printf '%s\n' "${changed[@]}"

if $check; then
  echo "(--check: ${#changed[@]} files would change; roles/{stack_manifest,artifact,vendor_repo} would move)"
  exit 0
fi
for old in "${!RENAMES[@]}"; do
  git mv "roles/$old" "roles/${RENAMES[$old]}"
done

# ansible-lint wants role names without a leading underscore and role variables prefixed with the
# role's name (_stack_...): the internal roles keep their variable names (users set them), so
# their own findings of these two rules go to .ansible-lint-ignore, file by file.
venv_bin="${VENV_BIN:-.venv/bin}"
"$venv_bin/ansible-lint" --offline -f pep8 --nocolor roles/_stack roles/_artifact roles/_vendor_repo 2>/dev/null \
  | sed -nE 's/^([^:]+):[0-9:]* (role-name|var-naming\[no-role-prefix\]):.*/\1 \2/p' \
  | sort -u >> .ansible-lint-ignore || true
sort -u -o .ansible-lint-ignore .ansible-lint-ignore
echo "renamed; now run: make role-docs, then pytest tests/lint tests/molecule/test_node_stack_errors.py"
# ansible-lint searches ~/.ansible/collections first, where Molecule installs the collection before
# each scenario: that copy still has the old names until the next scenario replaces it.
stale="${HOME}/.ansible/collections/ansible_collections/awsome/distributed_training/roles/stack_manifest"
if [[ -d "$stale" ]]; then
  echo "note: ${stale%/roles/*} (Molecule's copy) has the old role names; ansible-lint's syntax check" \
       "fails on it until a Molecule scenario reinstalls the collection (or remove that copy)"
fi
