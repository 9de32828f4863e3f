# The two commands of the README; each sets the machine up first (skipped when done).
VENV ?= .venv

.PHONY: setup sim test lint bench clean

setup:
	bash scripts/setup.sh

sim: setup
	$(VENV)/bin/exo doctor
	$(VENV)/bin/exo sim --duration 10 --controller pid --lockstep

test: setup
	$(VENV)/bin/ruff check src test bench launch scripts
	$(VENV)/bin/python -m pytest

bench: setup
	$(VENV)/bin/python bench/bench_twin.py --out bench/results/twin.json
	$(VENV)/bin/python bench/bench_graph.py --duration 60 --out bench/results/graph.json
	$(VENV)/bin/python bench/bench_drivers.py --out bench/results/drivers.json
	$(VENV)/bin/python bench/bench_intent.py --out bench/results/intent.json
	$(VENV)/bin/python bench/bench_ray.py --full-twin --out bench/results/ray.json

clean:
	rm -rf $(VENV) runs out build install log
