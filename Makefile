# Two commands for a newcomer: `make plan` (offline plan of a stack) and `make test`.
STACK ?= dev
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: plan test lint clean

$(INSTALLED): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

## plan: run the stack program offline under Pulumi mocks and write build/$(STACK)/ (STACK=dev|prod, STACK_FILE=...)
plan: $(INSTALLED)
	@$(PY) -m pixelstream.offline --stack $(STACK) $(if $(STACK_FILE),--stack-file $(STACK_FILE))

## test: the whole test suite; a run that collects no test fails
test: $(INSTALLED)
	@$(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

## lint: ruff lint and format check
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf build .pytest_cache
