# The two quick-start commands: `make run` and `make test`.
# Each first installs what is missing: torch (if absent), this project built against
# that torch (--no-build-isolation), and the test dependencies.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup run test

setup:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "$(TORCH_SPEC)"
	$(PYTHON) -m pip install "setuptools>=64"
	$(PYTHON) -m pip install --no-build-isolation -e ".[test]"

run: setup
	$(PYTHON) -m cifarconv

test: setup
	$(PYTHON) -m pytest tests
