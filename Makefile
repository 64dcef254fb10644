# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Checkpoints and downloaded sample media are cached inside the checkout, so one CI run fetches each once.
export SLOMO_HOME ?= $(CURDIR)/.cache/slomo
SAMPLE := .cache/media/bigbuckbunny.mp4
# The CPU build of torch: small and already on this platform's disk. Users with a GPU install their own.
TORCH ?= torch==2.13.0

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test,ray]"
	touch $@

$(SAMPLE): | setup
	$(PY) -m slomo.samples $(SAMPLE)

demo: setup $(SAMPLE)
	$(VENV)/bin/slomo $(SAMPLE) --factor 2 -o demo-out/bigbuckbunny.2x.mp4 -y
	@echo "demo output: $(CURDIR)/demo-out/bigbuckbunny.2x.mp4"

# Includes the Ray tests (marked slow and ray: a two-node cluster on this machine, 85 to 120 s
# on 2 shared cores). Skip them with: $(PY) -m pytest -q -m "not ray"
test: setup
	$(PY) -m pytest -q

bench: setup $(SAMPLE)
	$(VENV)/bin/slomo bench --write docs/benchmarks.md

clean:
	rm -rf $(VENV) .cache demo-out
