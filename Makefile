# Each target sets up what it needs: a fresh clone runs `make run` or `make test` directly.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: run train test lint bench browser clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

## run: the dashboard on the built-in demo base at http://127.0.0.1:8050 (trains first if needed)
run: $(STAMP)
	$(BIN)/python -m dashboard

## train: train on the built-in demo base and print the evaluation report
train: $(STAMP)
	$(BIN)/python -m analytics train

## test: every test (unit, callbacks, CLI end to end, browser; Telco when ../shared is present)
test: $(STAMP) browser
	$(BIN)/pytest

## browser: Debian's chromium and its matching driver for the browser tests (needs root)
browser:
	@if command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium and chromium-driver for the browser tests"; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
	else \
		echo "chromedriver not found and not root: browser tests will be skipped"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
