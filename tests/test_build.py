"""How the extension is compiled and linked, checked without a GPU.

On an H100 the CUDA build crashed the interpreter on bad arguments where the CPU build
raised cleanly.  A CUDA process also loads torch's CUDA libraries, and some of them
(libtorch_cuda, nvshmem, cuFile's statically linked libstdc++) export their own copies
of inline C++ functions, template instances and static objects; whatever the extension
exports of the same kind is merged with those copies at load time.  So the build
compiles every translation unit, C++ and CUDA alike, with torch's C++ ABI and hidden
visibility, and links with a version script that exports only the module init
(``setup.py: build_flags``).  These tests hold the build to that.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _setup_module():
    spec = importlib.util.spec_from_file_location("cifarconv_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not __main__: defines build_flags, builds nothing
    return module


@pytest.mark.parametrize("with_cuda", [False, True], ids=["cpu-build", "cuda-build"])
def test_every_translation_unit_gets_torchs_abi_and_hidden_visibility(with_cuda):
    flags = _setup_module().build_flags(torch, with_cuda)
    compilers = flags["extra_compile_args"]
    assert set(compilers) == ({"cxx", "nvcc"} if with_cuda else {"cxx"})
    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"
    for compiler, args in compilers.items():
        assert abi in args, compiler
        assert any(re.fullmatch(r"(-Xcompiler=)?-fvisibility=hidden", a) for a in args), (compiler, args)
    scripts = [a.split("=", 1)[1] for a in flags["extra_link_args"] if a.startswith("-Wl,--version-script=")]
    assert len(scripts) == 1 and Path(scripts[0]).is_file()
    text = Path(scripts[0]).read_text()
    assert re.search(r"global:\s*PyInit__C;\s*local:\s*\*;", text), text


def test_extension_exports_only_its_module_init():
    """The built library's dynamic symbol table defines PyInit__C and nothing else."""
    from cifarconv import _C

    nm = shutil.which("nm")
    assert nm is not None, "nm (binutils) is needed to read the extension's symbol table"
    out = subprocess.run([nm, "-D", "--defined-only", _C.__file__], capture_output=True, text=True, check=True).stdout
    defined = [line.split()[-1] for line in out.splitlines() if line.strip()]
    assert defined == ["PyInit__C"], defined
