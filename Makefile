# Everything a newcomer needs, from the project's own files.
#   make quickstart      set up .venv and run notebooks/quickstart.ipynb headless
#   make test            set up .venv and run the test suite
#   make test-ipython8   the same suite on IPython 8 (its own venv), as CI also runs it
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
IPY8   ?= .venv-ipython8

.PHONY: setup test test-ipython8 browser-deps quickstart notebooks docs fake-server bench lint

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

test: setup
	$(BIN)/python scripts/run_tests.py

# The browser tests need JupyterLab, Notebook 7 and Playwright (pip) and Debian's chromium
# (apt: Playwright cannot download a browser here). Without them, tests/test_browser.py is
# skipped and says why; CI runs this first.
browser-deps: setup
	$(BIN)/python -m pip install --quiet -e '.[test,browser]'
	test -x /usr/bin/chromium || apt-get install -y -q chromium \
		|| (apt-get update -q && apt-get install -y -q chromium) \
		|| echo "Could not install chromium: the browser tests will be skipped."

# IPython < 9.1 keeps no printed output: ormagic records it itself, and this exercises that.
$(IPY8)/.installed: pyproject.toml
	test -x $(IPY8)/bin/python || $(PYTHON) -m venv $(IPY8)
	$(IPY8)/bin/python -m pip install --quiet --upgrade pip
	$(IPY8)/bin/python -m pip install --quiet -e '.[test]' 'ipython>=8.12,<9'
	touch $@

test-ipython8: $(IPY8)/.installed
	$(IPY8)/bin/python scripts/run_tests.py

quickstart: setup
	$(BIN)/python scripts/quickstart.py

# run the shipped notebooks and docs/examples.ipynb against the fake server, save outputs
notebooks: setup
	$(BIN)/python scripts/notebooks.py --write

# copy the notebooks' saved outputs into the example blocks of README.md and docs/
docs: setup
	$(BIN)/python scripts/docs.py --write

fake-server: setup
	$(BIN)/python -m ormagic.testing.fake_openrouter --port 8765

bench: setup
	$(BIN)/python bench/bench_context.py
	$(BIN)/python bench/bench_markdown.py
	$(BIN)/python bench/bench_stream.py
	$(BIN)/python bench/bench_record.py
	$(BIN)/python bench/bench_side_by_side.py
	$(BIN)/python bench/bench_batch.py
	$(BIN)/python bench/bench_client.py
	$(BIN)/python bench/bench_startup.py
	$(BIN)/python bench/bench_memory.py

lint: setup
	$(BIN)/ruff check ormagic tests bench scripts
	$(BIN)/mypy
