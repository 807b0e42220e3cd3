# qconv developer entry points. Everything runs inside .venv, which `make install` creates.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench golden interop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## demo: build a small deterministic Llama-shaped BF16 checkpoint, convert it to q4_0, show the result
demo: $(STAMP)
	$(BIN)/python tools/make_demo_checkpoint.py demo-out/tiny-llama
	$(BIN)/qconv convert demo-out/tiny-llama --type q4_0 -o demo-out/tiny-llama-q4_0.gguf --force
	$(BIN)/qconv info demo-out/tiny-llama-q4_0.gguf

## test: the whole suite (what CI runs)
test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check qconv tests tools
	$(BIN)/ruff format --check qconv tests tools
	$(BIN)/mypy

## bench: speed and memory figures for docs/performance.md
bench: $(STAMP)
	$(BIN)/python tools/bench.py

## golden: regenerate tests/golden/quant from ggml's C quantizers (builds libggml-base once)
golden: $(STAMP)
	$(BIN)/python tools/make_quant_goldens.py

clean:
	rm -rf demo-out bench-out .pytest_cache
