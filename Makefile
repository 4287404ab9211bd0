# Everything a newcomer needs, from the project's own files.
#   make quickstart   set up .venv and run notebooks/quickstart.ipynb headless
#   make test         set up .venv and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: setup test quickstart fake-server bench lint

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

test: setup
	$(BIN)/python scripts/run_tests.py

quickstart: setup
	$(BIN)/python scripts/quickstart.py

fake-server: setup
	$(BIN)/python -m ormagic.testing.fake_openrouter --port 8765

bench: setup
	$(BIN)/python bench/bench_context.py
	$(BIN)/python bench/bench_markdown.py
	$(BIN)/python bench/bench_stream.py

lint: setup
	$(BIN)/ruff check ormagic tests bench scripts
	$(BIN)/mypy
