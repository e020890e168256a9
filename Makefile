# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Each creates its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch/torchvision pinned to the builds on this project's machines' local disk (no multi-GB download)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[train,export,dev,bench]'
	$(PY) -c "import torch, onnx, onnxruntime, munit_rt, munit_rt.training, munit_rt.export" \
		|| { echo "venv is incomplete: an install step failed" >&2; exit 1; }
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/demo.sh

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/translate_cpu.py

clean:
	rm -rf $(VENV) demo-out
