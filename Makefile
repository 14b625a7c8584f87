# make demo   create .venv when missing, then run the main job on the built-in default
# make test   create .venv when missing, then lint, type-check and run the tests
# make bench  create .venv when missing, then run the benchmark suite (writes benchmarks/results/)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# CPU torch: on the project machines pip finds the CPU wheel on local disk.
# Elsewhere point pip at a CPU wheel index, e.g. make TORCH="torch==2.13.0 --index-url <cpu index>"
TORCH  ?= torch==2.13.0
EXTRAS ?= onnx,openvino,sim,train,bench,scale,triton,dev
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgepilot demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy -p edgepilot
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
