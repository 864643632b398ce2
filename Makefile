# Two commands for a newcomer: `make plan` (offline plan of a stack) and `make test`.
STACK ?= dev
TRACE ?= launch-burst
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

STACKS := $(patsubst stacks/Pulumi.%.yaml,%,$(wildcard stacks/Pulumi.*.yaml))
# checkov pins packages that conflict with Pulumi's: it gets its own virtual environment.
CHECKOV_VENV ?= .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
# The OCI CLI pins packages (click, certifi) that conflict with the test tools': it gets its own virtual
# environment too, where the command lines the node image build and the bastion tool give it are parsed by the
# CLI's own command tree (tests/fake_oci.py). Those tools themselves run your own `oci`.
OCI_CLI_VENV ?= .venv-oci-cli

.PHONY: plan test lint check simulate docs integration clean

$(INSTALLED): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

## plan: run the stack program offline under Pulumi mocks and write build/$(STACK)/ (STACK=dev|prod, STACK_FILE=...)
plan: $(INSTALLED)
	@$(PY) -m pixelstream.tools.offline --stack $(STACK) $(if $(STACK_FILE),--stack-file $(STACK_FILE))

## test: the whole test suite; a run that collects no test fails
test: $(INSTALLED) $(OCI_CLI_VENV)/.installed
	@$(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

$(OCI_CLI_VENV)/.installed:
	$(PYTHON) -m venv $(OCI_CLI_VENV)
	$(OCI_CLI_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OCI_CLI_VENV)/bin/python -m pip install --quiet "oci-cli>=3.95,<4"
	touch $@

$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet "checkov>=3.3,<4"
	touch $@

## check: for every stack, the offline plan, then strict Kubernetes schemas, the policy pack and checkov; then the
## workflows' trust rules
check: $(INSTALLED) $(CHECKOV_VENV)/.installed
	@set -e; for stack in $(STACKS); do \
	  echo "== $$stack"; \
	  $(PY) -m pixelstream.tools.offline --stack $$stack > build-$$stack.log || { cat build-$$stack.log; exit 1; }; \
	  rm -f build-$$stack.log; \
	  $(PY) -m pixelstream.tools.checks manifests build/$$stack; \
	  $(PY) -m pixelstream.tools.checks policies build/$$stack --stack-file stacks/Pulumi.$$stack.yaml; \
	  $(CHECKOV) -d build/$$stack/manifests --framework kubernetes --skip-download --quiet --compact -o json > build/$$stack/checkov.json || true; \
	  $(PY) -m pixelstream.tools.checks checkov build/$$stack; \
	done
	@$(PY) -m pixelstream.tools.checks workflows .github

## simulate: the capacity simulator: the reference's settings, dev and prod side by side on one trace
## (TRACE=launch-burst|steady-day|flash-crowd|file.csv), written to build/simulate/ (summary.json, timeline.png)
simulate: $(INSTALLED)
	@$(PY) -m pixelstream.tools.capacity --compare reference dev prod --trace $(TRACE) --out build/simulate

## docs: the documentation site (MkDocs, Material theme) into build/site, strictly: a broken link or anchor fails
docs: $(INSTALLED)
	@NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet
	@echo "wrote build/site (open build/site/index.html)"

## integration: preview (and with PIXELSTREAM_INTEGRATION_UP=1, up then destroy) a throwaway stack in a real tenancy
integration: $(INSTALLED)
	@$(PY) -m pytest -m integration tests/integration -rs

## lint: ruff lint and format check
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf build .pytest_cache $(CHECKOV_VENV) $(OCI_CLI_VENV)
