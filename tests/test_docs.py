"""The docs stay true: their links and paths exist, their Python runs, their commands' flags exist.

* Every relative link and every repository path named in README.md, docs/ and the other
  READMEs exists.
* Every fenced ``python`` block runs on the CPU as it stands (the blocks of one file in
  order, in one fresh interpreter from the repository root) and asserts what its
  comments claim.  A block that needs what a CPU test run lacks is marked on the line
  before its fence: ``<!-- doc-test: skip (needs a CUDA GPU) -->``; the marks are few and
  each says what the block needs.
* Every ``python -m cifarconv...``, ``python benchmarks/...``, ``python tools/...`` and
  ``make ...`` command shown in a non-``python`` fence names only flags its ``--help`` lists
  and targets the Makefile has.  Fences carry a language tag.
* A table marked ``<!-- from: benchmarks/results/FILE.json -->`` on the line before it is what
  that file gives: a benchmark run's ``benchmarks/summary.py`` table, a training run's
  comparison table as the trainer prints it.  Every committed result file is described in
  benchmarks/results/README.md.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "benchmarks").rglob("README.md")])
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
SKIP = re.compile(r"<!-- doc-test: skip \((?P<reason>needs [^)]+)\) -->\s*$")
MAX_SKIPS = 6  # blocks that cannot run in a CPU test run: few, each marked with what it needs
# Top-level folders and files a path in the docs may start with.
TOP = ("cifarconv/", "csrc/", "benchmarks/", "tests/", "docs/", "examples/", "tools/", ".ci/", "setup.py",
       "pyproject.toml", "Makefile", "README.md")
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")


def ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def fences(doc: Path):
    """(language, body, line number, skip reason or None) of each fenced block in ``doc``."""
    text = doc.read_text()
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        yield m["lang"], m["body"], line, skip["reason"] if skip else None


def prose(doc: Path) -> str:
    """``doc`` without its fenced blocks."""
    return FENCE.sub("", doc.read_text())


@pytest.mark.parametrize("doc", DOCS, ids=ids(DOCS))
def test_links_and_paths_exist(doc):
    missing = []
    text = prose(doc)
    for m in LINK.finditer(text):
        target = m["target"].split("#")[0]
        if target and not re.match(r"[a-z]+:", target) and not (doc.parent / target).exists():
            missing.append(f"link {m['target']}")
    for m in CODE_SPAN.finditer(text):
        for token in re.split(r"[\s,]+", m.group(1)):
            token = token.strip("()'\"").rstrip(".:;")
            if not token.startswith(TOP) or any(c in token for c in "*<>{}$=|"):
                continue
            path = token.split("::")[0]
            if not (ROOT / path).exists():
                missing.append(f"path {token}")
    assert missing == [], f"{doc.relative_to(ROOT)}: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=ids(DOCS))
def test_every_fence_names_its_language(doc):
    untagged = [line for lang, _, line, _ in fences(doc) if not lang]
    assert untagged == [], f"{doc.relative_to(ROOT)}: fences without a language on lines {untagged}"


def test_skip_marks_are_few_and_say_what_a_block_needs():
    marks = [(doc, reason) for doc in DOCS for lang, _, _, reason in fences(doc) if reason]
    assert len(marks) <= MAX_SKIPS, marks
    for doc in DOCS:  # a mark that no fence follows, or a malformed one, is a mistake
        for line in doc.read_text().splitlines():
            if "doc-test:" in line:
                assert SKIP.search(line), f"{doc.relative_to(ROOT)}: malformed mark {line!r}"


PYTHON_DOCS = [doc for doc in DOCS if any(lang == "python" for lang, *_ in fences(doc))]


@pytest.mark.parametrize("doc", PYTHON_DOCS, ids=ids(PYTHON_DOCS))
def test_python_blocks_run(doc, tmp_path):
    blocks = [(body, line) for lang, body, line, reason in fences(doc) if lang == "python" and reason is None]
    if not blocks:
        pytest.skip(f"every python block of {doc.name} is marked as needing something a CPU run lacks")
    # One interpreter runs the blocks in order, each compiled under the doc's name and line,
    # so that a traceback points into the doc.
    runner = (
        "import json, sys\n"
        "namespace = {'__name__': '__main__'}\n"
        "for name, line, body in json.load(open(sys.argv[1])):\n"
        "    exec(compile('\\n' * line + body, name, 'exec'), namespace)\n"
    )
    blocks_file = tmp_path / "blocks.json"
    blocks_file.write_text(json.dumps([[str(doc.relative_to(ROOT)), line, body] for body, line in blocks]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "Agg"}
    env.pop("TRITON_INTERPRET", None)
    done = subprocess.run([sys.executable, "-c", runner, str(blocks_file)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{doc.relative_to(ROOT)}: a python block failed:\n{done.stderr[-3000:]}"


# -- commands ---------------------------------------------------------------------------


@cache
def help_text(*command: str) -> str:
    done = subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, f"{' '.join(command)} --help failed: {done.stderr[-2000:]}"
    return done.stdout


@cache
def make_targets() -> set[str]:
    return set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), re.M))


def commands(doc: Path):
    """Shell commands of ``doc``'s non-python fences: (line number, argv)."""
    for lang, body, line, _ in fences(doc):
        if lang in ("python", "json", "toml", ""):
            continue
        for i, raw in enumerate(body.splitlines()):
            cmd = raw.split(" #")[0].strip().removeprefix("$ ")
            cmd = re.sub(r"^(\w+=\S+\s+)+", "", cmd)  # leading VAR=value assignments
            if cmd.startswith(("python -m cifarconv", "python benchmarks/", "python tools/", "make ")):
                yield line + 1 + i, shlex.split(cmd)


COMMAND_DOCS = [doc for doc in DOCS if any(True for _ in commands(doc))]


@pytest.mark.parametrize("doc", COMMAND_DOCS, ids=ids(COMMAND_DOCS))
def test_commands_name_existing_flags_and_targets(doc):
    wrong = []
    for line, argv in commands(doc):
        if argv[0] == "make":
            targets = [a for a in argv[1:] if "=" not in a and not a.startswith("-")]
            wrong += [f"line {line}: make {t}" for t in targets if t not in make_targets()]
            continue
        command = tuple(argv[1:3]) if argv[1] == "-m" else (argv[1],)
        if argv[1] != "-m" and not (ROOT / argv[1]).exists():
            wrong.append(f"line {line}: no script {argv[1]}")
            continue
        text = help_text(*command)
        flags = {a.split("=")[0] for a in argv if a.startswith("--")}
        wrong += [f"line {line}: {' '.join(command)} {flag}" for flag in sorted(flags)
                  if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text)]
    assert wrong == [], f"{doc.relative_to(ROOT)}: commands with flags or targets that do not exist: {wrong}"


# -- tables made from committed result files ----------------------------------------------

FROM = re.compile(r"^<!-- from: (?P<path>\S+) -->\n(?P<block>```[^\n]*\n.*?^```|(?:\|[^\n]*\n?)+)", re.M | re.S)
RESULTS = ROOT / "benchmarks" / "results"


def table_of(path: Path) -> str:
    """The table a committed result file gives (see the module docstring)."""
    run = json.loads(path.read_text())
    if "results" in run and "settings" in run:  # benchmarks/conv_bench.py --out
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from summary import summary
        return summary(run)
    from cifarconv.train.report import comparison_table
    return comparison_table(run["records"] if "records" in run else [run["result"]])


@pytest.mark.parametrize("doc", DOCS, ids=ids(DOCS))
def test_tables_from_result_files_match_their_files(doc):
    stale = []
    for m in FROM.finditer(doc.read_text()):
        block = m["block"].strip().removeprefix("```text").removesuffix("```").strip()
        if table_of(ROOT / m["path"]) not in block:
            stale.append(m["path"])
    assert stale == [], f"{doc.relative_to(ROOT)}: tables that no longer match their result files: {stale}"


def test_every_result_file_is_described():
    described = (RESULTS / "README.md").read_text()
    missing = [p.name for p in sorted(RESULTS.iterdir()) if p.name != "README.md" and f"`{p.name}`" not in described]
    assert missing == [], f"benchmarks/results/README.md does not describe {missing}"
