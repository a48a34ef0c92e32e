# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# CPU build of torch, installed before the project so that the project's loose `torch>=2.2`
# is already satisfied (a bare `torch` resolve pulls several GB of CUDA wheels).
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo

.PHONY: demo test test-fast venv lint clean

$(VENV)/.installed-%: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[$*]"
	touch $@

venv: $(VENV)/.installed-cpu

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q

# The edit loop: the same suite without the tests marked `slow` (more than ~2 s each on a
# 2-core CPU: training runs, subprocess kills, end-to-end commands). CI runs `make test`.
test-fast: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m "not slow"

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check p2p_deploy train export bench tests

# The demo installs the [openvino] extra (ONNX Runtime + OpenVINO): its report then shows the
# fastest CPU row (OpenVINO INT8 on CPUs with VNNI/AMX).
demo: $(VENV)/.installed-openvino
	DEMO_DIR=$(DEMO_DIR) PY=$(PY) bash scripts/demo.sh

clean:
	rm -rf $(VENV) $(DEMO_DIR)
