#!/usr/bin/env bash
# The last step of a training-image bake (packer/container's shell-local post-processor), on the host:
#  1. label the image with the torch version it imports, read from its own stack record
#     (/opt/awsome/stack.json, written by roles/pytorch_env) - never from the pin;
#  2. write Enroot's runtime files into it (/etc/environment from the image's Env, /etc/rc from its
#     command: what `enroot import` writes) and export its root file system as the squashfs Enroot
#     and Pyxis run (`enroot create` / `srun --container-image=<file>.sqsh`), with enroot's own
#     mksquashfs options (ENROOT_SQUASH_OPTIONS, default "-comp lzo -noD");
#  3. remove the images of earlier bakes of the profile that no tag names any more.
#   IMAGE=localhost/awsome-training:cpu SQSH=build/images/awsome-training+cpu.sqsh scripts/training_image_finish.sh
set -euo pipefail
: "${IMAGE:?IMAGE names the image to finish}" "${SQSH:?SQSH names the squashfs file to write}"
record=/opt/awsome/stack.json

ctr=$(buildah from --pull-never --quiet "$IMAGE")
trap 'buildah rm "$ctr" >/dev/null' EXIT
root=$(buildah mount "$ctr")

torch=$(jq -er '.components.torch' "$root$record") \
  || { echo "error: $IMAGE: $record records no torch version" >&2; exit 1; }

# Enroot's image format: the environment and the command live in these files, not in an image config.
podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d' \
  > "$root/etc/environment"
cat > "$root/etc/rc" <<'RC'
# Written by scripts/training_image_finish.sh: the image has no entrypoint and runs bash by default.
cd / || exit 1
if [ $# -gt 0 ]; then exec "$@"; else exec /bin/bash; fi
RC

mkdir -p "$(dirname "$SQSH")"
# shellcheck disable=SC2086  # the options are a word list, as enroot passes them
mksquashfs "$root" "$SQSH.tmp" -noappend -all-root -no-progress -quiet -processors "$(nproc)" \
   ${ENROOT_SQUASH_OPTIONS:--comp lzo -noD} >/dev/null
mv -f "$SQSH.tmp" "$SQSH"

buildah config --label "org.awsome.torch=$torch" "$ctr"
buildah umount "$ctr" >/dev/null
buildah commit --quiet "$ctr" "$IMAGE" >/dev/null

# Earlier bakes of this profile that no tag names any more (podman rmi also drops their build parent);
# one that a container still uses stays.
profile=$(podman image inspect --format '{{index .Labels "org.awsome.profile"}}' "$IMAGE")
for old in $(podman images -q --filter dangling=true --filter label=org.awsome.torch \
               --filter "label=org.awsome.profile=$profile"); do
  podman rmi "$old" >/dev/null 2>&1 || echo "kept $old (in use)"
done
echo "finished $IMAGE (torch $torch) and $SQSH"
