# make run: start both services and the gateway; make test: lint, type-check and tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast system-packages lint typecheck pytest bench fmt key fuzz clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m apigw.run_all

test: system-packages lint typecheck pytest

# The tests that need no real processes, browser or servers (everything but tests/system/).
test-fast: $(STAMP)
	$(PY) -m pytest -q --ignore=tests/system

# Debian packages the tests need (chromium, redis-server); does nothing when they are there.
system-packages:
	bash scripts/install-system-packages.sh

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

# The hostile-input suite runs twice: under aiohttp's C parser (the whole suite) and under
# its pure-Python parser, which aiohttp falls back to silently when the extension is missing.
pytest: $(STAMP)
	$(PY) -m pytest
	AIOHTTP_NO_EXTENSIONS=1 $(PY) -m pytest tests/adversarial

fmt: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# req/s, latency, streaming and memory (run.py), then instructions per request under
# callgrind next to a bare aiohttp proxy (instr.py): the figure that holds on a noisy box.
bench: $(STAMP)
	@command -v wrk >/dev/null && command -v curl >/dev/null && command -v valgrind >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq wrk curl valgrind >/dev/null)
	$(PY) bench/run.py
	$(PY) bench/instr.py --budgets

key: $(STAMP)
	$(PY) -m apigw.keys $(or $(NAME),$(error usage: make key NAME=consumer-name))

# Coverage-guided fuzzing of path checking and header filtering (atheris, libFuzzer).
FUZZ_TIME ?= 60
fuzz: $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-fuzz.txt
	mkdir -p .fuzz-corpus
	$(PY) fuzz/fuzz_paths_headers.py -max_total_time=$(FUZZ_TIME) -print_final_stats=1 .fuzz-corpus

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .fuzz-corpus
