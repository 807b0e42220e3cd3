# qconv developer entry points. Everything runs inside .venv, which `make install` creates.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench golden golden-convert docs interop clean

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

## test: lint, type check and the whole suite (what CI runs)
test: lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check qconv tests tools
	$(BIN)/ruff format --check qconv tests tools
	$(BIN)/mypy

## bench: speed and memory figures for docs/performance.md, and KL divergence with/without --imatrix
bench: $(STAMP)
	$(BIN)/python tools/bench.py
	$(BIN)/python tools/bench_imatrix.py

## golden: regenerate tests/golden/quant, mixture and moe_imatrix from llama.cpp's own C code
## (builds libggml-base and llama-quantize once, cached in ~/.cache/qconv)
golden: $(STAMP)
	$(BIN)/python tools/make_quant_goldens.py
	$(BIN)/python tools/make_mixture_goldens.py
	$(BIN)/python tools/make_moe_imatrix_goldens.py

## golden-convert: regenerate tests/golden/arch, pipeline, pipeline_imatrix and gguf_io with
## llama.cpp's convert_hf_to_gguf.py, llama-imatrix and llama-quantize (torch in its own venv under
## ~/.cache/qconv); gguf_io: requantization of GGUF input, split sets; card: gguf-py's general.*
## metadata for real model names, model cards and generation configs
golden-convert: $(STAMP)
	$(BIN)/python tools/make_arch_goldens.py --keep-tokenizers
	$(BIN)/python tools/make_pipeline_goldens.py
	$(BIN)/python tools/make_pipeline_imatrix_goldens.py
	$(BIN)/python tools/make_gguf_io_goldens.py
	$(BIN)/python tools/make_card_goldens.py

## docs: regenerate docs/cli.md (from --help) and docs/format.md (from the modules' byte diagrams)
docs: $(STAMP)
	$(BIN)/python tools/gen_docs.py

## interop: build llama.cpp once (cached by version), run qconv's files through it, live ggml checks
interop: $(STAMP)
	tools/interop.sh

clean:
	rm -rf demo-out bench-out .pytest_cache
