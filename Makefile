# Two entry points: `make demo` and `make test` (`make test-all` adds the slow tests). All create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; on a GPU machine use `make TORCH_SPEC=torch ...` or install torch yourself first.
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo_out

.PHONY: demo test test-all install clean bench

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[test,browser]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/instantrestore demo --out $(DEMO_OUT)

# The fast suite (a few minutes on 2 cores): everything not marked slow.
test: install
	$(PY) -m pytest -q -m "not slow"

# Everything, slow tests included (what CI runs). The web UI's browser test needs Debian's chromium
# (apt-get install chromium; .ci/run installs it) and skips without it outside CI.
test-all: install
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/latency.py

clean:
	rm -rf $(VENV) $(DEMO_OUT)
