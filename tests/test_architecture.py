"""Architecture rules that import-linter cannot express (issue 12); `make arch` runs them beside the contracts.

- First-party imports inside function bodies hide the real dependency graph (and the cycles it has): there
  are fewer than ten in the product code, and each has a ``# imported here: <reason>`` comment directly
  above it (the comment may open a block of comment lines that ends at the import).
- No module is over 500 lines, apart from migrations and the k8s simulator's resource tables.
- No module imports another module's private (``_name``) names.

The source walked is the six apps, without their tests, migrations and conftest.py files (tests may import
whatever builds their fixtures).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("controlplane", "projects", "deployments", "k8s", "alerts", "billing", "ops")
MAX_INNER_IMPORTS = 9
INNER_IMPORT_MARK = "# imported here:"
MAX_MODULE_LINES = 500
# Data tables that are long because they list things, not because they mix concerns.
LONG_MODULES_ALLOWED = frozenset({"k8s/simulator/resources.py"})
SKIPPED_DIRS = frozenset({"migrations", "__pycache__", "node_modules", "var", "staticfiles"})

@dataclass(frozen=True)
class Found:
    path: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text}"


def _python_files(top: Path, *, skip_tests: bool):
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith(".") and not (skip_tests and d == "tests")
        )
        for name in sorted(filenames):
            if name.endswith(".py") and not (skip_tests and name == "conftest.py"):
                yield Path(dirpath, name)


def product_modules() -> list[Path]:
    return [path for app in FIRST_PARTY for path in _python_files(ROOT / app, skip_tests=True)]


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_module(node: ast.Import | ast.ImportFrom, path: Path) -> list[str]:
    """The absolute module names an import statement reads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        return [node.module or ""]
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (node.level - 1)]
    return [".".join([*base, node.module] if node.module else base)]


def _is_first_party(node: ast.Import | ast.ImportFrom, path: Path) -> bool:
    return any(name.split(".")[0] in FIRST_PARTY for name in _imported_module(node, path))


def _has_reason(lines: list[str], lineno: int) -> bool:
    """Whether the comment block directly above line ``lineno`` (1-based) starts with the mark and a reason."""
    index = lineno - 2
    while index >= 0 and lines[index].strip().startswith("#"):
        comment = lines[index].strip()
        if comment.startswith(INNER_IMPORT_MARK):
            return bool(comment[len(INNER_IMPORT_MARK):].strip())
        index -= 1
    return False


class _InnerImports(ast.NodeVisitor):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.depth = 0
        self.found: list[ast.Import | ast.ImportFrom] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        if self.depth and _is_first_party(node, self.path):
            self.found.append(node)

    visit_ImportFrom = visit_Import


def inner_imports(path: Path) -> list[tuple[Found, bool]]:
    """First-party imports inside function bodies, each with whether it carries its reason comment."""
    source = path.read_text()
    lines = source.splitlines()
    visitor = _InnerImports(path)
    visitor.visit(ast.parse(source, filename=str(path)))
    return [
        (Found(_relative(path), node.lineno, lines[node.lineno - 1].strip()), _has_reason(lines, node.lineno))
        for node in visitor.found
    ]


def all_inner_imports() -> list[tuple[Found, bool]]:
    return [item for path in product_modules() for item in inner_imports(path)]


def private_imports(path: Path) -> list[Found]:
    """``from other_module import _name``: a private name used outside the module that defines it."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if not isinstance(node, ast.ImportFrom) or not _is_first_party(node, path):
            continue
        if any(alias.name.startswith("_") and not alias.name.startswith("__") for alias in node.names):
            found.append(Found(_relative(path), node.lineno, lines[node.lineno - 1].strip()))
    return found


def long_modules() -> list[Found]:
    found = []
    for path in _python_files(ROOT, skip_tests=False):
        if ".venv" in path.relative_to(ROOT).parts or _relative(path) in LONG_MODULES_ALLOWED:
            continue
        count = len(path.read_text().splitlines())
        if count > MAX_MODULE_LINES:
            found.append(Found(_relative(path), count, "lines"))
    return found


def _report(items) -> str:
    return "\n".join(f"  {item}" for item in items)


# The checkers themselves are exercised on small sources, so the rules cannot pass by never matching.

def test_checker_sees_inner_imports_and_their_reasons(tmp_path, monkeypatch):
    package = tmp_path / "billing" / "services"
    package.mkdir(parents=True)
    module = package / "demo.py"
    module.write_text(
        "import os\n"
        "from billing import periods\n"
        "def f():\n"
        "    import json\n"
        "    from deployments import facade\n"
        "    # imported here: alerts imports billing at load time\n"
        "    # (a second comment line is fine)\n"
        "    from alerts.facade import notify\n"
        "    def g():\n"
        "        from . import usage\n"
        "    return lambda: None\n"
        "class C:\n"
        "    def m(self):\n"
        "        # imported here:\n"
        "        from ..selectors import _private\n"
    )
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    found = [(item.line, ok) for item, ok in inner_imports(module)]
    assert found == [(5, False), (8, True), (10, False), (15, False)]
    assert [item.line for item in private_imports(module)] == [15]


def test_first_party_imports_inside_functions_are_few():
    found = all_inner_imports()
    assert len(found) <= MAX_INNER_IMPORTS, (
        f"{len(found)} first-party imports inside function bodies (at most {MAX_INNER_IMPORTS}); move them to "
        f"the module top, and break the cycle that prevents it with a hook, a facade or enqueue by name:\n"
        + _report(item for item, _ in found)
    )


def test_each_import_inside_a_function_says_why():
    missing = [item for item, ok in all_inner_imports() if not ok]
    assert not missing, (
        f"first-party imports inside function bodies without a '{INNER_IMPORT_MARK} <reason>' comment directly "
        "above:\n" + _report(missing)
    )


def test_no_module_is_over_500_lines():
    found = long_modules()
    assert not found, f"modules over {MAX_MODULE_LINES} lines (split them by concern):\n" + _report(found)


def test_no_module_imports_another_modules_private_names():
    found = [item for path in product_modules() for item in private_imports(path)]
    assert not found, "private names imported across modules (export a public name, or a facade):\n" + _report(found)
