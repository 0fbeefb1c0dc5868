# awsome.distributed_training — the two commands a user needs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV    := .venv
STATE   := .state
PYTHON  ?= python3
NODES   ?= 2
PRESET  ?= cpu-tiny
CASE    ?= fsdp
PROFILE ?= gpu
OS      ?= ubuntu-22.04

export ANSIBLE_CONFIG   := $(CURDIR)/ansible.cfg
export CONTAINERS_CONF  := $(CURDIR)/molecule/containers.conf
export PATH             := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: help setup host-packages venv collection-link images demo cluster cluster-down run \
        test lint unit molecule integration benchmark ami image bundle clean role-docs sanity changelog

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- setup
setup: host-packages venv collection-link ## install host packages, the Python venv, the collection link

host-packages: $(STATE)/host-packages.stamp
$(STATE)/host-packages.stamp: scripts/host_packages.txt scripts/install_host_packages.sh
	@mkdir -p $(STATE)
	scripts/install_host_packages.sh
	@touch $@

venv: $(STATE)/venv.stamp
$(STATE)/venv.stamp: requirements.txt
	@mkdir -p $(STATE)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --no-compile --disable-pip-version-check -r requirements.txt
	@touch $@

# The repository is the collection: link it where ansible.cfg's collections_path looks.
collection-link:
	@mkdir -p .collections/ansible_collections/awsome
	@ln -sfn ../../.. .collections/ansible_collections/awsome/distributed_training

images: setup ## build the local Debian 12 base images (Molecule, container bake)
	scripts/build_images.sh

# ---------------------------------------------------------------- the main job
demo: setup ## 2-node simulated cluster + run_fsdp.yml (cpu-tiny), then print the report path
	ansible-playbook playbooks/local_cluster.yml -e cluster_state=present -e cluster_nodes=$(NODES)
	ansible-playbook playbooks/run_$(CASE).yml -i $(STATE)/cluster/inventory.yml -e preset=$(PRESET)
	@echo "report: $$(readlink -f results/latest)/report.html"

cluster: setup ## create the simulated cluster (NODES=2)
	ansible-playbook playbooks/local_cluster.yml -e cluster_state=present -e cluster_nodes=$(NODES)

cluster-down: setup ## remove the simulated cluster
	ansible-playbook playbooks/local_cluster.yml -e cluster_state=absent

run: setup ## run a test case on the simulated cluster (CASE=fsdp PRESET=cpu-tiny)
	ansible-playbook playbooks/run_$(CASE).yml -i $(STATE)/cluster/inventory.yml -e preset=$(PRESET)

# ---------------------------------------------------------------- tests
test: setup images ## everything: lint, unit, Molecule, integration (two sessions side by side)
	scripts/run_tests.sh

lint: setup ## ruff, yamllint, ansible-lint, packer validate
	pytest tests/lint

unit: setup ## unit tests (trainer, plugins, report)
	pytest tests/unit

molecule: setup images ## Molecule scenarios
	pytest tests/molecule

integration: setup images ## simulated-cluster and moto-backed tests
	pytest tests/integration

role-docs: setup ## regenerate roles/*/README.md and docs/roles/ from the roles' argument specs
	$(VENV)/bin/python scripts/gen_role_docs.py

changelog: setup ## fold changelogs/fragments into galaxy.yml's version and regenerate CHANGELOG.md
	antsibull-changelog release --version $$($(VENV)/bin/python -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
	rm -f changelogs/.plugin-cache.yaml

sanity: setup ## ansible-test sanity, offline (venvs cached in .state/sanity)
	tests/sanity/run_sanity.sh

benchmark: setup ## launch overhead (ansible-playbook vs torchrun by hand, 2 and 4 nodes) and the container's start cost
	@if podman image exists localhost/awsome-training:cpu; then image=(--container localhost/awsome-training:cpu); \
	else image=(); echo "no localhost/awsome-training:cpu: container start cost skipped (make image PROFILE=training-cpu, docs/containers.md)"; fi; \
	$(VENV)/bin/python scripts/bench_launch_overhead.py --nodes 2 4 --repeats 2 "$${image[@]}"

# ---------------------------------------------------------------- images
ami: setup ## bake an AMI: make ami PROFILE=gpu|neuron|cpu OS=ubuntu-22.04|ubuntu-24.04|al2023
	scripts/packer_build.sh ami $(PROFILE) $(OS)

image: setup images ## bake a container image (PROFILE=gpu|cpu|training-cpu|training-cuda; training-*: also build/images/*.sqsh)
	scripts/packer_build.sh container $(PROFILE)

bundle: setup ## build the HyperPod lifecycle bundle into build/lifecycle
	lifecycle/build_bundle.sh build/lifecycle lifecycle/examples/provisioning_parameters.json

clean: ## remove the cluster, results and local state (keeps the venv)
	-ansible-playbook playbooks/local_cluster.yml -e cluster_state=absent
	rm -rf results $(STATE)/cluster
