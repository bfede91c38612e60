"""Build script: metadata lives in pyproject.toml; this file builds the C++/CUDA extension.

Install with

    pip install --no-build-isolation -e .

so the extension compiles against the torch that is already installed (an isolated
build would fetch another torch and fail with undefined symbols at import).

* C++ kernels (csrc/*.cpp, csrc/cpu/) are always built.
* CUDA kernels (csrc/cuda/) are built when torch has CUDA and nvcc is found, or when
  FORCE_CUDA=1; a CPU-only torch gives a CPU-only build.  TORCH_CUDA_ARCH_LIST picks the
  GPU architectures and MAX_JOBS the number of parallel compile jobs (torch's
  cpp_extension reads both).
* CIFARCONV_SKIP_EXTENSION=1 installs the pure-Python package only.
"""

import glob
import os

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(ROOT, "csrc")


def sources(*patterns):
    # Relative to setup.py, as setuptools wants; sorted so builds are reproducible.
    return sorted(os.path.relpath(p, ROOT) for pattern in patterns for p in glob.glob(os.path.join(CSRC, pattern)))


def extension_modules():
    if os.environ.get("CIFARCONV_SKIP_EXTENSION") == "1":
        return [], {}
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
    except ImportError as e:
        raise SystemExit(
            "cifarconv's extension compiles against the installed torch, and none was found "
            f"({e}). Install torch first, then: pip install --no-build-isolation -e ."
        ) from e

    with_cuda = os.environ.get("FORCE_CUDA") == "1" or (torch.version.cuda is not None and CUDA_HOME is not None)
    cxx_flags = ["-O3", "-fopenmp"]  # -fopenmp: at::parallel_for runs on OpenMP threads
    kwargs = dict(
        name="cifarconv._C",
        sources=sources("*.cpp", "cpu/*.cpp") + (sources("cuda/*.cpp", "cuda/*.cu") if with_cuda else []),
        include_dirs=[CSRC],
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3"]},
        extra_link_args=["-fopenmp"],
    )
    if with_cuda:
        kwargs["define_macros"] = [("WITH_CUDA", None)]
        ext = CUDAExtension(**kwargs)
    else:
        kwargs["extra_compile_args"] = {"cxx": cxx_flags}
        ext = CppExtension(**kwargs)
    return [ext], {"build_ext": BuildExtension}


ext_modules, cmdclass = extension_modules()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
