# The two commands of the README. Both set everything up first (scripts/setup.sh is idempotent).
VENV ?= .venv
PYTEST_ARGS ?= -q

.PHONY: setup demo test bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/l2l demo --workdir runs/demo

# pytest exits 5 when it collects no test: that is not a failure of the set-up
test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) || [ $$? -eq 5 ]

bench: setup
	$(VENV)/bin/python benchmarks/bench_synthref.py
	$(VENV)/bin/python benchmarks/bench_loader.py

clean:
	rm -rf runs/demo
