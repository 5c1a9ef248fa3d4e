# The two commands of the README:
#   make demo   set up .venv and run `hvpatch demo` on the embedded default store
#   make test   set up .venv with the test tools, install the Debian packages the tests need,
#               and run lint, type checks, import contracts and the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?= -n auto

.PHONY: demo test check pytest lock bench clean

$(BIN)/python:
	scripts/bootstrap-venv.sh $(PYTHON) $(VENV)

$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# the Debian packages first: libvirt-python (a dev dependency) builds against libvirt-dev
$(VENV)/.installed-dev: requirements-dev.lock pyproject.toml scripts/install-test-packages.sh | $(BIN)/python
	scripts/install-test-packages.sh
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/hvpatch demo

test: $(VENV)/.installed-dev
	scripts/install-test-packages.sh
	$(MAKE) check
	$(BIN)/pytest $(PYTEST_ARGS)

check:
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

# Re-pin every dependency (needs the network); commit both lock files.
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --extra dev --output-file requirements-dev.lock pyproject.toml

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
