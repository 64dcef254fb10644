# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Checkpoints and downloaded sample media are cached inside the checkout, so one CI run fetches each once.
export SLOMO_HOME ?= $(CURDIR)/.cache/slomo
SAMPLE := .cache/media/bigbuckbunny.mp4
# The demo clip: the first 5.5 s of real camera footage (640x272, 137 frames, two cuts), cut from
# bikes.mp4 without re-encoding: a fifth of the pixels of the 720p sample per frame, where the default
# model gains most over RIFE v4.0.  fp32, since bf16 is only fast on CPUs with native bfloat16
# (AVX512-BF16/AMX).
DEMO_CLIP := .cache/media/bikes-5s.mp4
# The CPU build of torch: small and already on this platform's disk. Users with a GPU install their own.
TORCH ?= torch==2.13.0

.PHONY: setup demo test test-fast lint bench clean

setup: $(VENV)/.installed

# What slomo itself needs: all the demo waits for.
$(VENV)/.runtime: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install -q --disable-pip-version-check -e .
	touch $@

# ... and what the tests, the linters and the Ray cluster need.
$(VENV)/.installed: $(VENV)/.runtime
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test,ray]"
	touch $@

$(SAMPLE) $(DEMO_CLIP): | $(VENV)/.runtime
	$(PY) -m slomo.samples $@

demo: $(VENV)/.runtime $(DEMO_CLIP)
	$(VENV)/bin/slomo $(DEMO_CLIP) --factor 2 -o demo-out/bikes.2x.mp4 -y
	@echo "demo output: $(CURDIR)/demo-out/bikes.2x.mp4"

# Includes the Ray tests (marked slow and ray: a two-node cluster on this machine, 85 to 120 s
# on 2 shared cores). Skip them with: $(PY) -m pytest -q -m "not ray"
test: setup
	$(PY) -m pytest -q

# the tests not marked slow: a quick check while editing
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src

bench: setup $(SAMPLE)
	$(VENV)/bin/slomo bench --write docs/benchmarks.md

clean:
	rm -rf $(VENV) .cache demo-out
