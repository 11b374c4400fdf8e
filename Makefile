# The two set-up commands of the README. Each creates .venv and installs what it needs first.
VENV := .venv
STAMP := $(VENV)/.ovbench-installed

.PHONY: setup demo test test-all bench

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

setup: $(STAMP)

# The main job on the built-in default data: generate, train a small seganv, evaluate, leaderboard.
demo: $(STAMP)
	$(VENV)/bin/ovbench generate
	$(VENV)/bin/ovbench train --model seganv --data ovbench-data/ovd --pool ovbench-data/pool.h5 --preset tiny --resume
	$(VENV)/bin/ovbench evaluate --model seganv --data ovbench-data/ovd --pool ovbench-data/pool.h5 --out leaderboards/demo/seganv-tiny.json
	$(VENV)/bin/ovbench evaluate --model convex-hull --data ovbench-data/ovd --out leaderboards/demo/convex-hull.json
	$(VENV)/bin/ovbench leaderboard
	cat leaderboards/demo.md

test: $(STAMP)
	$(VENV)/bin/ruff check ovbench baselines renderers tests bench docs
	$(VENV)/bin/python -m pytest

test-all: $(STAMP)
	$(VENV)/bin/ruff check ovbench baselines renderers tests bench docs
	$(VENV)/bin/python -m pytest -m ""

bench: $(STAMP)
	$(VENV)/bin/python bench/pool.py
	$(VENV)/bin/python bench/ovd.py
	$(VENV)/bin/python bench/evaluate.py
	$(VENV)/bin/python bench/train.py
