# searchq — set-up, demo and tests. Everything runs in ./.venv (created on first use).
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.searchq-installed
DEMO    ?= runs/demo

.PHONY: install demo test lint clean postgres postgres-stop

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch first, pinned, and only when absent: a bare `torch` requirement would pull a CUDA build.
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev,onnx]"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/searchq run hawq --ratio 1.5 --out $(DEMO)
	$(VENV)/bin/searchq show $(DEMO)

# The distributed-search test needs a PostgreSQL server: .ci/postgres starts a throw-away one on
# 127.0.0.1:55432 (installing PostgreSQL with apt-get when missing and root) and prints its URL;
# without PostgreSQL and root it prints nothing and that test skips. A URL already in
# SEARCHQ_TEST_POSTGRES is used as it is.
test: install
	$(VENV)/bin/ruff check searchq tests
	$(VENV)/bin/mypy searchq
	@url="$${SEARCHQ_TEST_POSTGRES:-}"; \
	if [ -z "$$url" ]; then url="$$(bash .ci/postgres)" || exit 1; fi; \
	if [ -n "$$url" ]; then echo "PostgreSQL test server: up"; else echo "PostgreSQL test: skipped"; fi; \
	SEARCHQ_TEST_POSTGRES="$$url" $(PY) -m pytest

postgres:
	@bash .ci/postgres

postgres-stop:
	@bash .ci/postgres stop

lint: install
	$(VENV)/bin/ruff check searchq tests
	$(VENV)/bin/ruff format --check searchq tests
	$(VENV)/bin/mypy searchq

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
