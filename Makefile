# Two entry points for a fresh machine: `make demo` and `make test`.
# torch is pinned here (a CPU build) and installed before the project, whose
# own requirement stays a range.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH) -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python examples/quickstart.py
	$(BIN)/python examples/runs.py

test: $(BIN)/.installed
	$(BIN)/pytest -q

bench: $(BIN)/.installed
	$(BIN)/pip install --quiet traitlets
	$(BIN)/python benchmarks/bench_frame.py
	$(BIN)/python benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) .pytest_cache
