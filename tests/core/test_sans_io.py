"""core/ is sans-IO and standard-library only: no HTTP client, no platform module, no event loop
of its own, and no clock or randomness read inline (they are injected)."""

import ast
import pathlib
import sys

CORE = pathlib.Path(__file__).resolve().parents[2] / "core"
# Standard-library modules that would let core do I/O or read time and chance by itself.
FORBIDDEN_STDLIB = {"socket", "ssl", "http", "urllib", "random", "secrets", "time", "uuid"}
FORBIDDEN_CALLS = {"get_event_loop", "new_event_loop", "run", "run_until_complete", "urandom"}
# The one production id source, which adapters inject into Gateway; core never calls it inline
# (checked below: no other core module imports it).
ID_SOURCE = "ids.py"


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def test_core_imports_only_the_standard_library():
    allowed = set(sys.stdlib_module_names) - FORBIDDEN_STDLIB
    bad = []
    files = sorted(CORE.rglob("*.py"))
    assert len(files) >= 8, "core/ was not found where the test expects it"
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, name in _imports(tree):
            top = name.split(".")[0]
            if top not in allowed and top != "__future__":
                bad.append(f"{path.relative_to(CORE.parent)}:{line} imports {name}")
    assert bad == []


def test_core_creates_no_event_loop_and_reads_no_clock():
    bad = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            is_attribute = isinstance(node, ast.Attribute)
            if path.name == ID_SOURCE and is_attribute and node.attr == "urandom":
                continue
            if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_CALLS:
                bad.append(f"{path.name}:{node.lineno} uses .{node.attr}")
            reads_clock = (
                isinstance(node, ast.Attribute)
                and node.attr in {"now", "utcnow", "today"}
                and isinstance(node.value, ast.Name)
                and node.value.id in {"datetime", "date"}
            )
            if reads_clock:
                bad.append(f"{path.name}:{node.lineno} reads the clock")
    assert bad == []


def test_the_checker_catches_a_forbidden_import(tmp_path):
    # The check above must be able to fail: run it over a planted bad module.
    tree = ast.parse("import httpx\nfrom js import fetch\nimport json\n")
    names = [name for _, name in _imports(tree)]
    allowed = set(sys.stdlib_module_names) - FORBIDDEN_STDLIB
    assert [n for n in names if n.split(".")[0] not in allowed] == ["httpx", "js"]


def test_no_core_module_draws_ids_itself():
    # Ids reach core only through Gateway(new_id=...): importing the source would bypass that.
    users = [
        path.name
        for path in sorted(CORE.rglob("*.py"))
        if path.name not in (ID_SOURCE, "__init__.py")
        and any(
            isinstance(node, ast.ImportFrom) and node.module and node.module.endswith("ids")
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    ]
    assert users == []
