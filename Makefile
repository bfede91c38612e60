# The two quick-start commands: `make run` and `make test`.
# Each first installs what is missing: torch (if absent), the build tools, and this
# project built against that torch (--no-build-isolation), C++/CUDA extension included,
# with the trainer's and the tests' dependencies.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
NVCC ?= nvcc
# GPU architectures for the compile-only check of the CUDA kernels.
CUDA_CHECK_ARCHS ?= 80 90

.PHONY: setup run test train cuda-check

setup:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "$(TORCH_SPEC)"
	$(PYTHON) -m pip install "setuptools>=64" ninja
	$(PYTHON) -m pip install --no-build-isolation -e ".[train,test]"

run: setup
	$(PYTHON) -m cifarconv

test: setup
	$(PYTHON) -m pytest tests

# Train CIFAR-10 from ./data (or $$CIFARCONV_DATA); TRAIN_ARGS adds flags, e.g. TRAIN_ARGS="--conv torch,custom".
TRAIN_ARGS ?=
train: setup
	$(PYTHON) -m cifarconv.train $(TRAIN_ARGS)

# Compile every CUDA kernel file with the bare nvcc, as torch's build would (same
# half-precision defines), for each architecture: no GPU or CUDA torch needed.
cuda-check:
	@command -v $(NVCC) >/dev/null || { echo "cuda-check: $(NVCC) not found, nothing checked"; exit 1; }
	@out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && for f in csrc/cuda/*.cu; do \
	  for arch in $(CUDA_CHECK_ARCHS); do \
	    echo "nvcc sm_$$arch $$f" && \
	    $(NVCC) -c "$$f" -o "$$out/$$(basename $$f).sm_$$arch.o" -I csrc -O3 \
	      -gencode arch=compute_$$arch,code=sm_$$arch -Xcompiler -Wall,-Werror \
	      -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ \
	      -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__ || exit 1; \
	  done; \
	done
