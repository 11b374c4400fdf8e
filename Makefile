# The two set-up commands of the README. Each creates .venv and installs what it needs first.
VENV := .venv
STAMP := $(VENV)/.ovbench-installed

.PHONY: setup demo test test-all bench

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

setup: $(STAMP)

# The main job on the built-in default data.
demo: $(STAMP)
	$(VENV)/bin/ovbench generate

test: $(STAMP)
	$(VENV)/bin/python -m pytest

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -m ""

bench: $(STAMP)
	$(VENV)/bin/python bench/pool.py
