"""Docs read the single sources of truth, and every requirement is bound to the test functions
that prove it (REQ-SYS-05).

Traceability is checked on test functions, not on strings anywhere in tests/: a requirement in
docs/requirements.md counts as tested only if a test function (`def test_*` in tests/**/*.py,
found with ast) cites its id in its docstring; each entry of a row's tests column must be an
exact `tests/<path>.py::<test function>` that exists and cites that row's id in its docstring;
every id cited in a docstring under tests/ must be listed; and a citation left in a comment
inside a test function (which would prove nothing) is an error.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQ = re.compile(r"\bREQ-[A-Z][A-Z0-9]*-\d+\b")
ROW = re.compile(r"^\|\s*(REQ-[A-Z][A-Z0-9]*-\d+)\s*\|(.*)\|\s*$")
TEST_REF = re.compile(r"^tests/(?:[\w.-]+/)*test_\w+\.py::(?:Test\w+::)?test_\w+$")


class FunctionInfo:
    """One test function: its `path::name`, the ids its docstring cites, its line span."""

    def __init__(self, ref: str, doc: str, first: int, last: int) -> None:
        self.ref = ref
        self.cites = set(REQ.findall(doc))
        self.first = first
        self.last = last


def _test_files() -> list[Path]:
    return sorted(p for p in (ROOT / "tests").rglob("*.py") if ".hypothesis" not in p.parts)


def _functions(rel: str, tree: ast.Module) -> list[FunctionInfo]:
    """Module-level test_* functions and test_* methods of Test* classes."""
    out = []
    scopes: list[tuple[str, list[ast.stmt]]] = [("", tree.body)]
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            scopes.append((node.name + "::", node.body))
    for prefix, body in scopes:
        for fn in body:
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) and fn.name.startswith(
                "test_"
            ):
                doc = ast.get_docstring(fn) or ""
                last = fn.end_lineno or fn.lineno
                out.append(FunctionInfo(f"{rel}::{prefix}{fn.name}", doc, fn.lineno, last))
    return out


def _scan_file(
    path: Path, root: Path
) -> tuple[list[FunctionInfo], dict[str, set[str]], list[str]]:
    """A test file's test functions; ids cited in any docstring (module, class, function);
    comments citing ids inside a test function ("path:line: comment")."""
    src = path.read_text(encoding="utf-8")
    tree = ast.parse(src, filename=str(path))
    rel = path.relative_to(root).as_posix()
    fns = _functions(rel, tree)
    doc_ids: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            for rid in REQ.findall(ast.get_docstring(node) or ""):
                doc_ids.setdefault(rid, set()).add(rel)
    comments = []
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT and REQ.search(tok.string):
            line = tok.start[0]
            if any(fn.first <= line <= fn.last for fn in fns):
                comments.append(f"{rel}:{line}: {tok.string.strip()}")
    return fns, doc_ids, comments


@cache
def _scan() -> tuple[dict[str, FunctionInfo], dict[str, set[str]], list[str]]:
    """All test functions by ref, docstring citations -> files, and comment citations."""
    tests: dict[str, FunctionInfo] = {}
    doc_ids: dict[str, set[str]] = {}
    comments: list[str] = []
    for path in _test_files():
        fns, ids, com = _scan_file(path, ROOT)
        tests.update((fn.ref, fn) for fn in fns)
        for rid, where in ids.items():
            doc_ids.setdefault(rid, set()).update(where)
        comments += com
    return tests, doc_ids, comments


@cache
def _rows() -> dict[str, list[str]]:
    """Requirement id -> the entries of its tests column (comma-separated), in order."""
    rows: dict[str, list[str]] = {}
    text = (ROOT / "docs" / "requirements.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        m = ROW.match(line)
        if not m:
            continue
        rid = m.group(1)
        assert rid not in rows, f"{rid} is listed twice in docs/requirements.md"
        cells = m.group(2).split("|")
        assert len(cells) >= 2, f"{rid}: the row needs a requirement and a tests column"
        rows[rid] = [e.strip().strip("`") for e in cells[-1].split(",") if e.strip()]
    return rows


def test_every_requirement_has_a_test() -> None:
    """REQ-SYS-05: each requirement in docs/requirements.md is cited in the docstring of at least
    one test function (a string elsewhere in tests/ does not count)."""
    tests, _, _ = _scan()
    cited = set().union(*(fn.cites for fn in tests.values()))
    missing = sorted(set(_rows()) - cited)
    assert not missing, f"requirements no test function's docstring cites: {missing}"


def test_requirement_rows_name_test_functions_that_cite_them() -> None:
    """REQ-SYS-05: every entry of a row's tests column is an exact `tests/<path>.py::<test>`
    (no wildcards or file-only entries), the test function exists, and its docstring cites the
    row's id; every row names at least one test."""
    tests, _, _ = _scan()
    errors = []
    for rid, entries in _rows().items():
        if not entries:
            errors.append(f"{rid}: no test named in the tests column")
        for ref in entries:
            if not TEST_REF.match(ref):
                errors.append(f"{rid}: {ref!r} is not tests/<path>.py::<test function>")
            elif ref not in tests:
                errors.append(f"{rid}: {ref} does not exist")
            elif rid not in tests[ref].cites:
                errors.append(f"{rid}: the docstring of {ref} does not cite {rid}")
    assert not errors, "\n".join(errors)


def test_every_cited_requirement_is_listed() -> None:
    """REQ-SYS-05: docstrings under tests/ cite only requirements that docs/requirements.md
    lists."""
    _, doc_ids, _ = _scan()
    unknown = {rid: sorted(where) for rid, where in doc_ids.items() if rid not in _rows()}
    assert not unknown, f"docstrings cite unlisted requirements: {unknown}"


def test_no_requirement_cited_in_a_test_comment() -> None:
    """REQ-SYS-05: a requirement id in a comment inside a test function proves nothing; the
    citation belongs in the test function's docstring."""
    _, _, comments = _scan()
    assert not comments, "move these citations into the docstring:\n" + "\n".join(comments)


def test_traceability_checker_rejects_bad_rows(tmp_path: Path) -> None:
    """REQ-SYS-05: the checker accepts exact test names only, and finds test functions with
    ast: a docstring citation counts, a comment or a helper's docstring does not."""
    assert TEST_REF.match("tests/mp/test_ticks.py::test_diff_across_the_wrap")
    assert TEST_REF.match("tests/test_sil.py::test_clean_stop")
    for bad in (
        "tests/mp/test_*::test_resync_after_garbage",
        "tests/test_signals.py",
        "::test_clean_stop",
        "test_sil.py::test_clean_stop",
        "tests/test_sil.py::test_*",
        "tests/test_sil.py::helper",
    ):
        assert not TEST_REF.match(bad), bad
    m = ROW.match("| REQ-ABC-07 | text | tests/a/test_b.py::test_c, tests/test_d.py::test_e |")
    assert m and m.group(1) == "REQ-ABC-07"
    path = tmp_path / "tests" / "test_x.py"
    path.parent.mkdir()
    path.write_text(
        '"""Module docstring citing REQ-ABC-04."""\n\n\n'
        'def test_a():\n    """REQ-ABC-01: yes."""\n\n\n'
        "def test_b():\n    # REQ-ABC-02: a comment\n    pass\n\n\n"
        'def helper():\n    """REQ-ABC-03."""\n\n\n'
        "# REQ-ABC-05: a comment outside any test\n",
        encoding="utf-8",
    )
    fns, doc_ids, comments = _scan_file(path, tmp_path)
    assert {f.ref: f.cites for f in fns} == {
        "tests/test_x.py::test_a": {"REQ-ABC-01"},
        "tests/test_x.py::test_b": set(),
    }
    assert set(doc_ids) == {"REQ-ABC-01", "REQ-ABC-03", "REQ-ABC-04"}
    assert comments == ["tests/test_x.py:9: # REQ-ABC-02: a comment"]


def test_generated_docs_up_to_date() -> None:
    """REQ-SYS-05: docs/settings.md is generated from the settings table (tools/gen_docs.py)."""
    res = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout


def test_protocol_doc_names_every_condition() -> None:
    """REQ-SYS-05: docs/protocol.md lists every alarm condition id of the firmware table."""
    from bedside.alarms.conditions import IDS

    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert [c for c in IDS if f"`{c}`" not in text] == []
