# netfence.docker — the two commands of the README are `make demo` and `make test`.
VENV    ?= /opt/netfence/venv
PY      := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)
BUILD   := build
COLL    := $(BUILD)/ansible_collections/netfence/docker
LAB     := $(PY) tests/lab/lab.py
PYTEST_ARGS ?=
# The Python ansible-test runs the sanity tests with (the toolchain's, see tools/setup).
SANITY_PYTHON ?= 3.13
# make compat: the ansible-core releases the collection supports (meta/runtime.yml), each in
# a venv of its own under COMPAT_ROOT; COMPAT_STEPS is any of sanity,unit,smoke.
COMPAT_CORES ?= 2.20 2.21
COMPAT_STEPS ?= sanity,unit,smoke
COMPAT_ROOT  ?= /opt/netfence

.PHONY: help deps demo test unit integration sanity lint molecule lab-up lab-down lab-status \
        probe bench build-collection root-firewall-snapshot clean checkout-link compat ee-context test-repeat

help:
	@echo "make demo   - set up everything, bring the lab up, show a blackout and its restore"
	@echo "make test   - every test: sanity, ansible-lint, molecule, unit and integration (pytest)"
	@echo "make bench  - benchmarks (not part of make test); results in bench/results/"
	@echo "make compat - sanity, unit tests and a lab smoke test on every supported ansible-core"
	@echo "make test-repeat N=3 - the integration suite N times, each from a lab taken down first"

# playbooks/collections/ansible_collections/netfence/docker -> the checkout (generated, ignored).
checkout-link:
	@sh tools/link-checkout

# tools/setup builds the venv make uses: VENV (NETFENCE_VENV for the script).
deps: checkout-link
	@NETFENCE_VENV=$(VENV) bash tools/setup

lab-up: deps
	$(LAB) up

lab-down:
	@if [ -x $(PY) ]; then $(LAB) down --all; else python3 tests/lab/lab.py down --all; fi

lab-status:
	$(LAB) status

probe:
	$(LAB) probe

demo: deps root-firewall-snapshot
	$(PY) tools/demo.py

root-firewall-snapshot:
	@mkdir -p $(BUILD)
	@$(PY) tools/rootfw.py snapshot $(BUILD)/root-firewall.before

# ansible-test needs the collection under ansible_collections/<namespace>/<name>/ in a git repo.
build-collection:
	@rm -rf $(COLL) && mkdir -p $(COLL)
	@rsync -a --delete --exclude .git --exclude build --exclude .venv --exclude '__pycache__' \
	  --exclude .pytest_cache --exclude /playbooks/collections ./ $(COLL)/
	@cd $(COLL) && git init -q && git add -A && \
	  git -c user.name=ci -c user.email=ci@localhost commit -qm snapshot

sanity: deps build-collection
	cd $(COLL) && ansible-test sanity --venv --python $(SANITY_PYTHON) --color no

# Galaxy readiness: ansible-lint's production profile over the whole collection, and the
# documentation of every plugin and role as antsibull-docs (docs.ansible.com's builder) reads it.
lint: deps build-collection
	ansible-lint --profile production
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/$(BUILD) antsibull-docs lint-collection-docs --plugin-docs $(COLL)

molecule: deps lab-up
	cd extensions && molecule test --all

unit: deps
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: deps lab-up
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# Order matters: the root-namespace firewall is snapshotted first and compared by the last
# pytest test; the pytest summary line is the last thing printed.
test: deps root-firewall-snapshot lab-up sanity lint molecule
	NETFENCE_ROOT_FW_BEFORE=$(CURDIR)/$(BUILD)/root-firewall.before \
	  $(PY) -m pytest -p no:cacheprovider tests/unit tests/integration $(PYTEST_ARGS)

# Every supported ansible-core (COMPAT_CORES), each in its own venv: ansible-test sanity, the
# unit tests, and blackout/status/restore.yml against one lab host (NETFENCE_LAB selects it).
compat: deps
	$(PY) tools/compat.py --root $(COMPAT_ROOT) --steps $(COMPAT_STEPS) $(COMPAT_CORES)

# The execution environment's build context (execution-environment.yml): the collection tarball
# in build/ee/, then ansible-builder create. Building the image needs podman/docker and a
# reachable registry: `ansible-builder build -f execution-environment.yml` elsewhere.
ee-context: deps
	@rm -rf $(BUILD)/ee && mkdir -p $(BUILD)/ee
	ansible-galaxy collection build --output-path $(BUILD)/ee .
	ansible-builder create -f execution-environment.yml -c $(BUILD)/ee/context

# The integration suite N times, each round from `lab.py down` of the lab (not --all): proof that
# it passes on a cold lab every time. Each round's result and duration is printed.
N ?= 3
test-repeat: deps
	@N=$(N) PY=$(PY) PYTEST_ARGS="$(PYTEST_ARGS)" bash tools/test-repeat

bench: deps
	$(PY) bench/run.py

clean:
	rm -rf $(BUILD) .pytest_cache
