# The two commands a newcomer needs: `make demo` (main job) and `make test`. Both build the environment first.
PY := .venv/bin/python

.PHONY: env demo test lint bench

env:
	@bash scripts/setup_env.sh

demo: env
	$(PY) -m harness.run_workflows --out output

test: env
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

bench: env
	$(PY) bench/attention_overhead.py
