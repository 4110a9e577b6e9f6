# Two entry points: `make demo` (set up, then restore a bundled image) and `make test`.
# Both are idempotent: the virtual environment is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of PyTorch goes in first so that nothing pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test test-all bench nett-priors rg-priors lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/learnreg demo --out-dir out/demo

test: install
	$(PY) -m pytest

test-all: install
	$(PY) -m pytest -m ""

$(VENV)/.bench: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[test,bench]"
	touch $@

bench: $(VENV)/.bench
	$(VENV)/bin/learnreg bench classical

# The NETT depth priors of docs/benchmarks/dsrnett.md (9 Table 1 rows + 2 beyond the paper), one after the other.
NETT_RECIPES := unet-s1 unet-s1-noise umsg-s2 umsg-s2-noise umsg-s2-decay umsg-s2-gtnoise umsg-s2-noisytarget umsg-s2-interp umsg-s2-onestep umsg-s2-refine unet-s1-refine
nett-priors: install
	for r in $(NETT_RECIPES); do $(PY) -m learnreg.training recipes/nett/$$r.yaml || exit 1; done

# The five regularizing-gradient priors of recipes/rg/README.md, in dependency order (needs drunet-rgb).
RG_RECIPES := pnpreg mtdeq rg1 deqgd rerg
rg-priors: install
	for r in $(RG_RECIPES); do $(PY) -m learnreg.training recipes/rg/$$r.yaml || exit 1; done

clean:
	rm -rf $(VENV) out build *.egg-info
