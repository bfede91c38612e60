# The two quick-start commands: `make run` and `make test`.
# Each first installs what is missing: torch (if absent), the build tools, and this
# project built against that torch (--no-build-isolation), C++/CUDA extension included,
# with the trainer's and the tests' dependencies.
PYTHON ?= python3
SHELL := /bin/bash
TORCH_SPEC ?= torch==2.13.0
NVCC ?= nvcc
# GPU architectures for the compile-only check of the CUDA kernels.
CUDA_CHECK_ARCHS ?= 80 90
# The oldest Triton the backend supports (torch 2.11's), installed beside the current one
# for `make triton-check`; TRITON_CHECK_ARGS=--quick checks a subset (CI does).
TRITON_OLDEST ?= 3.6.0
TRITON_OLDEST_DIR ?= build/triton-$(TRITON_OLDEST)
TRITON_CHECK_ARGS ?=

.PHONY: setup install run test train cuda-check triton-check gpu-check

# `make setup` installs once, then again only when what the build reads (setup.py,
# pyproject.toml, csrc/) changed, or when $(PYTHON) no longer imports this checkout with
# its extension and pytest; the stamp names the interpreter it installed into.
SETUP_STAMP := build/setup.stamp
BUILD_INPUTS := setup.py pyproject.toml csrc
INSTALLED := import pathlib, sys, cifarconv._C, pytest; \
	assert pathlib.Path(cifarconv._C.__file__).resolve().parent == pathlib.Path("cifarconv").resolve(); \
	print(sys.executable)

setup:
	@if [ -f $(SETUP_STAMP) ] && [ -z "$$(find $(BUILD_INPUTS) -newer $(SETUP_STAMP) | head -n 1)" ] \
	    && [ "$$($(PYTHON) -c '$(INSTALLED)' 2>/dev/null)" = "$$(cat $(SETUP_STAMP))" ]; then \
	  echo "make setup: installed and up to date (remove $(SETUP_STAMP) to reinstall)"; \
	else $(MAKE) --no-print-directory install; fi

install:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "$(TORCH_SPEC)"
	$(PYTHON) -m pip install "setuptools>=64" ninja
	$(PYTHON) -m pip install --no-build-isolation -e ".[train,test]"
	@mkdir -p build && $(PYTHON) -c '$(INSTALLED)' > $(SETUP_STAMP)

run: setup
	$(PYTHON) -m cifarconv

test: setup
	$(PYTHON) -m pytest tests

# Train CIFAR-10 from ./data (or $$CIFARCONV_DATA); TRAIN_ARGS adds flags, e.g. TRAIN_ARGS="--conv torch,custom".
TRAIN_ARGS ?=
train: setup
	$(PYTHON) -m cifarconv.train $(TRAIN_ARGS)

# Compile every CUDA kernel file with the bare nvcc, as torch's build would (same
# half-precision defines), for each architecture: no GPU or CUDA torch needed.  ptxas -v
# prints each kernel's registers, spills and shared memory.
cuda-check:
	@command -v $(NVCC) >/dev/null || { echo "cuda-check: $(NVCC) not found, nothing checked"; exit 1; }
	@out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && for f in csrc/cuda/*.cu; do \
	  for arch in $(CUDA_CHECK_ARCHS); do \
	    echo "nvcc sm_$$arch $$f" && \
	    $(NVCC) -c "$$f" -o "$$out/$$(basename $$f).sm_$$arch.o" -I csrc -O3 \
	      -gencode arch=compute_$$arch,code=sm_$$arch -Xcompiler -Wall,-Werror -Xptxas -v \
	      -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ \
	      -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__ 2>&1 | c++filt | awk \
	      '/Compiling entry function/ { split($$0, q, "'"'"'"); name = q[2]; gsub(/\(anonymous namespace\)::/, "", name); \
	                                      sub(/^void /, "", name); sub(/\(.*/, "", name); sub(/.*::/, "", name) } \
	       /bytes stack frame/ { frame = $$1; st = $$5; ld = $$9 } \
	       /Used [0-9]+ registers/ { printf "    %-36s %3d registers, %s B stack, %s B spill stores, %s B spill loads\n", \
	                                        name, $$5, frame, st, ld } \
	       /error|warning/ { print }'; \
	    test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	  done; \
	done

# Compile every Triton kernel variant for sm_90 and sm_80 without a GPU
# (tools/triton_check.py), with the installed Triton and with the oldest supported one.
triton-check:
	$(PYTHON) tools/triton_check.py $(TRITON_CHECK_ARGS)
	@test -f $(TRITON_OLDEST_DIR)/triton/__init__.py || \
	  $(PYTHON) -m pip install --quiet --no-deps --target $(TRITON_OLDEST_DIR) triton==$(TRITON_OLDEST)
	PYTHONPATH=$(abspath $(TRITON_OLDEST_DIR)) $(PYTHON) tools/triton_check.py $(TRITON_CHECK_ARGS)

# On a machine with a GPU: build for it, run the whole suite on cuda, the benchmarks and a
# short training; JSON under benchmarks/results/ (tools/gpu_check.sh).
gpu-check:
	PYTHON=$(PYTHON) bash tools/gpu_check.sh
