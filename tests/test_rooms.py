"""The library and the applications on top of it live in separate rooms: no library module
imports the trainer (or another application), and the trainer, started without its own
dependencies, says in one line how to install them."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "cifarconv"
APPLICATIONS = ("cifarconv.train", "cifarconv.explain", "cifarconv.check")  # packages inside cifarconv/ that are not the library


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_application(name: str) -> bool:
    return any(name == app or name.startswith(app + ".") for app in APPLICATIONS)


def library_modules() -> list[str]:
    names = [module_name(p) for p in sorted(PACKAGE.rglob("*.py"))]
    return [n for n in names if not is_application(n)]


def imported_names(source: str, module: str, is_package: bool) -> list[str]:
    """Every module an ``import`` statement in ``source`` names, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            names.append(stem)
            names += [f"{stem}.{alias.name}" for alias in node.names]  # `from . import train` names a module
    return names


def test_the_scan_sees_relative_and_absolute_imports():
    planted = "from .train import loop\nfrom .. import explain\nimport cifarconv.train.models\nfrom .ops import meta\n"
    names = imported_names(planted, "cifarconv.backends.custom", is_package=False)
    assert "cifarconv.backends.train.loop" in names  # a relative import resolves from its package
    assert [n for n in names if is_application(n)] == ["cifarconv.explain", "cifarconv.train.models"]
    assert "cifarconv.backends.ops.meta" in names
    assert "cifarconv.train" in imported_names("from . import train\n", "cifarconv", is_package=True)


def test_no_library_file_imports_an_application():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        if is_application(module):
            continue
        for name in imported_names(path.read_text(), module, path.name == "__init__.py"):
            if is_application(name):
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offenders, offenders


def run_python(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python *args`` with this checkout's cifarconv first on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **(env or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300)


def test_importing_the_whole_library_loads_no_application():
    modules = library_modules()
    assert {"cifarconv", "cifarconv.module", "cifarconv.backends.custom", "cifarconv.ops.autograd"} <= set(modules)
    code = ("import importlib, json, sys\n"
            "for name in sys.argv[1:]: importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))")
    done = run_python("-c", code, *modules, env={"TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET", "1")})
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert set(modules) <= set(loaded)
    assert [name for name in loaded if is_application(name)] == []


def test_trainer_without_its_dependencies_names_the_install_command(tmp_path):
    # sys.modules[name] = None makes `import name` fail as if the package were not installed.
    code = ("import runpy, sys\n"
            "sys.modules['tqdm'] = sys.modules['matplotlib'] = None\n"
            "sys.argv[0] = 'cifarconv.train'\n"
            "runpy.run_module('cifarconv.train', run_name='__main__')")
    done = run_python("-c", code, "--device", "cpu", "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "tqdm, matplotlib" in line and 'pip install "cifarconv[train]"' in line
    assert not (tmp_path / "out").exists()


def test_python_m_cifarconv_train_runs():
    done = run_python("-m", "cifarconv.train", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m cifarconv.train") and "--model" in done.stdout
