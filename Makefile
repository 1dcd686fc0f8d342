# The two commands of the README. Both set everything up first (scripts/setup.sh is idempotent).
# make test: two pytest processes of one thread each (pytest-xdist; the thread policy, utils/threads.py)
VENV ?= .venv
PYTEST_ARGS ?= -q -n 2

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/l2l demo --workdir runs/demo

# the browser test's chromium where it can be installed (scripts/setup_browser.sh says when not);
# pytest exits 5 when it collects no test: that is not a failure of the set-up
test: setup
	@bash scripts/setup_browser.sh
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) || [ $$? -eq 5 ]

# ruff (lint + format check) and mypy on src/ (pyproject.toml holds their settings); CI runs it
lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

bench: setup
	$(VENV)/bin/python benchmarks/bench_synthref.py
	$(VENV)/bin/python benchmarks/bench_loader.py

clean:
	rm -rf runs/demo
