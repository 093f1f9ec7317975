# The two entry points: `make demo` and `make test`. Both create the virtual
# environment in .venv on first use.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cashmatch demo --serve

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) data mlruns out
