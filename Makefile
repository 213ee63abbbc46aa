# searchq — set-up, demo and tests. Everything runs in ./.venv (created on first use).
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.searchq-installed
DEMO    ?= runs/demo

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch first, pinned, and only when absent: a bare `torch` requirement would pull a CUDA build.
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/searchq run hawq --ratio 1.5 --out $(DEMO)
	$(VENV)/bin/searchq show $(DEMO)

test: install
	$(VENV)/bin/ruff check searchq tests
	$(VENV)/bin/mypy searchq
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check searchq tests
	$(VENV)/bin/ruff format --check searchq tests
	$(VENV)/bin/mypy searchq

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
