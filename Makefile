# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# CPU build of torch, installed before the project so that the `train` extra's loose
# `torch>=2.5` is already satisfied (a bare `torch` resolve pulls several GB of CUDA wheels).
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo
comma := ,

.PHONY: demo test test-fast venv lint clean

# .installed-train+cpu installs the extras train,cpu (a plus stands for a comma in the name).
$(VENV)/.installed-%: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[$(subst +,$(comma),$*)]"
	touch $@

venv: $(VENV)/.installed-train+cpu

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q

# The edit loop: the same suite without the tests marked `slow` (a second or more each on a
# 2-core CPU: training runs, subprocess kills, end-to-end commands), on two workers (about
# 50 s on 2 cores). CI runs `make test`.
test-fast: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m "not slow" -n 2

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check p2p_deploy train export bench tests

# The demo trains and exports (the train extra) and installs ONNX Runtime + OpenVINO: its report
# then shows the fastest CPU row (OpenVINO INT8 on CPUs with VNNI/AMX).
demo: $(VENV)/.installed-train+openvino
	DEMO_DIR=$(DEMO_DIR) PY=$(PY) bash scripts/demo.sh

clean:
	rm -rf $(VENV) $(DEMO_DIR)
