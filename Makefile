# Two entry points for a fresh machine: `make demo` and `make test`.
# torch is pinned here (a CPU build) and installed before the project, whose
# own requirement stays a range.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
TB_PORT ?= 6006

.PHONY: demo test test-pythons bench clean docs tensorboard

# `make demo` installs what the demo needs; `make test` adds the test and docs tools on top.
$(BIN)/.installed-demo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH) -e '.[examples]'
	touch $@

$(BIN)/.installed: $(BIN)/.installed-demo
	$(BIN)/pip install --quiet $(TORCH) -e '.[dev]'
	touch $@

# The five-minute demo: trains, writes the comparison charts and the data-flow graph to runs/demo.
demo: $(BIN)/.installed-demo
	rm -rf runs/demo  # a second demo would otherwise double every curve
	MPLBACKEND=Agg $(BIN)/python examples/demo.py runs/demo

test: $(BIN)/.installed
	$(BIN)/pytest -q

# the whole suite on every other Python that pyenv has here (3.10, 3.12, 3.13)
test-pythons:
	PYTHONS="3.10 3.12 3.13" SUITES=tests .ci/pythons

bench: $(BIN)/.installed
	$(BIN)/pip install --quiet traitlets
	$(BIN)/python benchmarks/bench_frame.py
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_trees.py

clean:
	rm -rf $(VENV) .pytest_cache site build/docs-api

# The demo's charts in TensorBoard, served on this machine only (TB_PORT=6007 for another port).
tensorboard: $(BIN)/.installed-demo
	test -d runs/demo || $(MAKE) demo
	$(BIN)/tensorboard --logdir runs/demo --host 127.0.0.1 --port $(TB_PORT)

# The documentation site, built into site/ (open site/index.html, no server needed).
docs: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
