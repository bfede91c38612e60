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
    kwargs = dict(
        name="cifarconv._C",
        sources=sources("*.cpp", "cpu/*.cpp", "cpu/gemm/*.cpp") + (sources("cuda/*.cpp", "cuda/*.cu") if with_cuda else []),
        include_dirs=[CSRC],
        **build_flags(torch, with_cuda),
    )
    if with_cuda:
        kwargs["define_macros"] = [("WITH_CUDA", None)]
        ext = CUDAExtension(**kwargs)
    else:
        ext = CppExtension(**kwargs)
    return [ext], {"build_ext": BuildExtension}


def build_flags(torch, with_cuda: bool) -> dict:
    """Compiler and linker flags beyond torch's own (tests/test_build.py checks them).

    * Every translation unit, C++ and CUDA alike, is compiled with torch's C++ ABI
      (``_GLIBCXX_USE_CXX11_ABI`` as torch was built) and hidden visibility.
    * The link exports PyInit__C alone (csrc/exports.map): the library's inline functions,
      template instances and static objects are never merged with the copies that other
      libraries in a CUDA process export (some from a statically linked libstdc++).
    * -fopenmp: at::parallel_for runs on OpenMP threads in the CPU kernels.
    """
    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"
    cxx = ["-O3", "-fopenmp", "-fvisibility=hidden", abi]
    compile_args = {"cxx": cxx, "nvcc": ["-O3", "-Xcompiler=-fvisibility=hidden", abi]} if with_cuda else {"cxx": cxx}
    link_args = ["-fopenmp", f"-Wl,--version-script={os.path.join(CSRC, 'exports.map')}"]
    return {"extra_compile_args": compile_args, "extra_link_args": link_args}


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import build_flags
    ext_modules, cmdclass = extension_modules()
    setup(ext_modules=ext_modules, cmdclass=cmdclass)
