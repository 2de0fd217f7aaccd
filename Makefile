# The two commands a newcomer needs: `make demo` (main job) and `make test`. Both build the environment first.
# `make test-comfy033` / `make demo-comfy033` run the same against ComfyUI 0.33.0 in a second environment, built
# from ../shared/comfyui/ComfyUI-0.33.0.tar.gz (see scripts/setup_env.sh).
PY := .venv/bin/python
PY033 := .venv-comfy033/bin/python
COMFY033 := COMFYUI_PATH=$(CURDIR)/.cache/ComfyUI-0.33.0

.PHONY: env env-comfy033 demo demo-comfy033 test test-comfy033 test-browser lint bench

env:
	@bash scripts/setup_env.sh

env-comfy033:
	@bash scripts/setup_env.sh comfy033

demo: env
	$(PY) -m harness.run_workflows --out output

demo-comfy033: env-comfy033
	$(COMFY033) $(PY033) -m harness.run_workflows --out output/comfy033

# Every test, the lab's claim measurements included: on a fresh clone the claim tests train the lab models (cached in
# .cache/lab afterwards); training and measuring take about 13 minutes of the suite on 2 idle cores.
test: env
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

# Only the lab's claim measurements on its trained models (`make test` runs them too).
test-lab: env
	$(PY) -m pytest -q -m "lab and slow"

# The quick local loop (about two minutes): everything but the server and slow tests; `make test` runs them all.
.PHONY: test-fast
test-fast: env
	$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not server and not slow"

# The whole suite again on ComfyUI 0.33.0, but the lab's claim measurements: they measure the trained models, which
# do not change with ComfyUI, and take minutes; the lab's world, workflows and loader still run here.
test-comfy033: env-comfy033
	$(COMFY033) $(PY033) -m pytest -q -m "not (lab and slow)"

# The real frontend in headless Chromium (`apt-get install chromium`); `make test` runs these too.
test-browser: env
	$(PY) -m pytest -q -m browser tests/browser

# Every bench in its own process, one table in output/bench-<preset>-<device>.md: tiny on the CPU, full size on a GPU.
.PHONY: bench-gpu
bench: env
	$(PY) bench/run_all.py --preset tiny --device cpu

bench-gpu: env
	$(PY) bench/run_all.py --preset full --device cuda --limit 150
