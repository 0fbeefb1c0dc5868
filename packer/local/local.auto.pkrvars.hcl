# The bake that completes on one Linux machine with no cloud: the container template (the files
# here are links to packer/container) with the cpu profile, into a local image. The test
# (tests/integration/test_packer.py) and `scripts/packer_build.sh local` add artifact_mirror and
# stack_overlay for the local artifact mirror on 127.0.0.1, which the host network reaches.
profile           = "cpu"
image_repository  = "localhost/awsome-node-local"
image_tag         = "cpu"
container_network = "host"
