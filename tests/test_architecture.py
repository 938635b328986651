"""The shape of the source tree, read with ``ast`` (no PyTorch, no import of the package): the layers of
``docs/dev/architecture.md``, no private names across packages, no overlong functions, no flags in library messages,
no ``sys.argv`` read below ``main``.

Each test prints every violation as ``file:line: what`` and fails on any that is not in the allowlists below.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "resnet"

# -- allowlists: known exceptions, each with its reason (empty: the tree keeps every rule) -------------------
ALLOWED_IMPORTS: set[str] = set()  # "importer -> imported package": upward arrows and sibling imports
ALLOWED_PRIVATE: set[str] = set()  # "importer -> module.name"
ALLOWED_LONG: set[str] = set()  # "file::function" over MAX_LINES lines
# library files with a string that names a command-line flag, composes a command line or a development path.
# deploy/publish.py: the model card it writes for the Hub is a document for people, showing the weights' use from
# Python and from the command line (`resnet predict hf-hub:...`).
ALLOWED_FLAG_FILES: set[str] = {"deploy/publish.py"}

# -- the layers ----------------------------------------------------------------------------------------------
RANK = {
    "": 0, "utils": 0, "errors": 0, "reference": 0,  # "": resnet/__init__.py (its own imports: see FACADE)
    "models": 1, "data": 1,
    "weights": 2,  # named weights: builds on models and data
    "inference": 3,  # running a network: its type, test-time views, engines, optimisation
    "train": 4, "evaluate": 4, "deploy": 4,
    "analysis": 5, "explain": 5, "serve": 5,
    "cli": 6, "__main__": 6,
}
SIBLINGS = {"train", "evaluate", "deploy"}  # the same layer, and none imports another
# resnet/__init__.py is the public facade: it names the whole library lazily (strings), and imports `explain`
# eagerly because a lazy attribute named like its subpackage would be shadowed by that subpackage.
FACADE_EAGER = {"utils", "explain"}
MAX_LINES = 80
LONG_MARK = "# long:"


@dataclass(frozen=True)
class Import:
    file: str  # relative to src/resnet, e.g. "deploy/bench.py"
    line: int
    module: str  # dotted, inside resnet ("models.complexity", "" for the package itself)
    names: tuple[str, ...]
    in_function: bool
    type_only: bool  # under `if TYPE_CHECKING:`


def _files(root: Path) -> list[tuple[Path, str]]:
    return [(p, p.relative_to(root).as_posix()) for p in sorted(root.rglob("*.py"))]


def package_of(rel: str) -> str:
    """``"deploy/bench.py" -> "deploy"``; top-level modules are their own package; ``__init__.py`` is ``""``."""
    head = rel.split("/")[0]
    return "" if head == "__init__.py" else head.removesuffix(".py")


def _resolve(rel: str, level: int, module: str | None) -> str | None:
    """The dotted module inside resnet a relative import names (None: outside resnet)."""
    parts = rel.removesuffix(".py").split("/")
    base = parts[:-1]  # the package the file is in (for __init__.py: that package)
    if level == 0:
        if module is None or not (module == "resnet" or module.startswith("resnet.")):
            return None
        return module.removeprefix("resnet").lstrip(".")
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, *(module.split(".") if module else [])])


class _Collector(ast.NodeVisitor):
    def __init__(self, rel: str) -> None:
        self.rel, self.depth, self.type_only, self.found = rel, 0, 0, []  # type: ignore[var-annotated]

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function  # noqa: N815

    def visit_If(self, node: ast.If) -> None:  # noqa: N802
        checking = "TYPE_CHECKING" in ast.unparse(node.test)
        self.type_only += checking
        for child in node.body:
            self.visit(child)
        self.type_only -= checking
        for child in node.orelse:
            self.visit(child)

    def _add(self, node: ast.AST, module: str | None, names: tuple[str, ...]) -> None:
        if module is not None:
            self.found.append(Import(self.rel, node.lineno, module, names, self.depth > 0, self.type_only > 0))

    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802
        for alias in node.names:
            self._add(node, _resolve(self.rel, 0, alias.name), ())

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        self._add(node, _resolve(self.rel, node.level, node.module), tuple(a.name for a in node.names))


def all_imports(root: Path = SRC) -> list[Import]:
    out: list[Import] = []
    for path, rel in _files(root):
        collector = _Collector(rel)
        collector.visit(ast.parse(path.read_text(encoding="utf-8")))
        out.extend(collector.found)
    return out


def target_packages(imp: Import) -> list[str]:
    """The packages an import reaches: ``from .. import weights`` reaches ``weights``, not the facade."""
    head = imp.module.split(".")[0] if imp.module else ""
    if head:
        return [head]
    subpackages = [n for n in imp.names if n in RANK and n]
    return subpackages or [""]


def _matches(key: str, allowed: set[str]) -> bool:
    return any(re.fullmatch(re.escape(a).replace(r"\*", ".*"), key) for a in allowed)


def assert_clean(title: str, found: list[str], allowed: set[str], key: Callable[[str], str]) -> None:
    """Print every violation (allowed ones marked) and fail on those ``allowed`` does not cover."""
    keys = {v: key(v) for v in found}
    bad = [v for v in found if not _matches(keys[v], allowed)]
    for v in found:
        print(f"{'VIOLATION' if v in bad else 'allowed (issue 15, being fixed)'}: {title}: {v}")
    for entry in sorted(allowed):
        if not any(_matches(k, {entry}) for k in keys.values()):
            print(f"note: allowlist entry {entry!r} no longer occurs; remove it")
    assert not bad, f"{title}:\n" + "\n".join(bad)


# -- (a) layers and cycles -------------------------------------------------------------------------------------
def layer_violations(imports: list[Import]) -> list[str]:
    out = []
    for imp in imports:
        if imp.type_only:
            continue
        source = package_of(imp.file)
        for target in target_packages(imp):
            if target == source or target not in RANK:
                continue
            if source == "":
                if target not in FACADE_EAGER and not imp.in_function:
                    out.append(f"{imp.file}:{imp.line}: the facade imports {target} eagerly")
                continue
            where = "inside a function" if imp.in_function else "at module level"
            if RANK[target] > RANK[source]:
                out.append(f"{imp.file}:{imp.line}: {source} (layer {RANK[source]}) imports {target} (layer "
                           f"{RANK[target]}) {where} -> {imp.file} -> {target}")
            elif source in SIBLINGS and target in SIBLINGS:
                out.append(f"{imp.file}:{imp.line}: sibling {source} imports {target} {where} -> {imp.file} -> {target}")
    return out


def package_cycles(imports: list[Import]) -> list[str]:
    """Cycles in the package graph (facade excluded: it names everything, and everything may read its version)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        source = package_of(imp.file)
        for target in target_packages(imp):
            if not imp.type_only and source and target and target != source and target in RANK:
                graph.setdefault(source, set()).add(target)
    return _cycles(graph)


def module_of(rel: str) -> str:
    """``"data/load.py" -> "data.load"``; a package's ``__init__.py`` is the package (``"data"``, ``""``)."""
    dotted = rel.removesuffix(".py").replace("/", ".")
    return "" if dotted == "__init__" else dotted.removesuffix(".__init__")


def file_targets(imp: Import, modules: set[str]) -> list[str]:
    """The files an import reads: ``from . import cam`` reads ``explain.cam``; ``from .x import f`` reads ``x``."""
    if imp.module in modules or imp.module == "":
        subs = [m for m in (f"{imp.module}.{n}".lstrip(".") for n in imp.names) if m in modules]
        return subs or [imp.module]
    parts = imp.module.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return [".".join(parts)]


def file_cycles(imports: list[Import], modules: set[str]) -> list[str]:
    """Cycles between files, through any import but those for type checking only (a function-level import that
    closes a loop is still one). The facade is left out, as in :func:`package_cycles`."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        source = module_of(imp.file)
        if imp.type_only or not source:
            continue
        for target in file_targets(imp, modules):
            if target and target != source:
                graph.setdefault(source, set()).add(target)
    return _cycles(graph)


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    cycles, state = [], {}  # type: ignore[var-annotated]

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return cycles


def test_imports_go_down_the_layers() -> None:
    assert_clean("upward or sibling import", layer_violations(all_imports()), ALLOWED_IMPORTS,
                 key=lambda v: " -> ".join(v.rsplit(" -> ", 2)[-2:]))


def test_no_cycle_between_packages() -> None:
    imports = [i for i in all_imports()
               if not any(_matches(f"{i.file} -> {t}", ALLOWED_IMPORTS) for t in target_packages(i))]
    cycles = package_cycles(imports)
    for c in cycles:
        print(f"VIOLATION: cycle: {c}")
    assert not cycles, "import cycles between packages:\n" + "\n".join(cycles)


def test_no_cycle_between_files() -> None:
    cycles = file_cycles(all_imports(), {module_of(rel) for _, rel in _files(SRC)})
    for c in cycles:
        print(f"VIOLATION: cycle between files: {c}")
    assert not cycles, "import cycles between files:\n" + "\n".join(cycles)


def test_file_cycle_detection(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "__init__.py").write_text("")
    (tmp_path / "data" / "load.py").write_text("from .registry import NAMES\n")
    (tmp_path / "data" / "registry.py").write_text("def f():\n    from .load import load\n")
    (tmp_path / "data" / "other.py").write_text("from . import load\nfrom .registry import NAMES\n")
    modules = {module_of(rel) for _, rel in _files(tmp_path)}
    assert file_cycles(all_imports(tmp_path), modules) == ["data.load -> data.registry -> data.load"]


def documented_ranks(doc: Path = SRC.parents[1] / "docs" / "dev" / "architecture.md") -> dict[str, int]:
    """``{package: rank}`` read off the numbered layer list of ``docs/dev/architecture.md`` (``N. `resnet.x` ...``)."""
    text = doc.read_text(encoding="utf-8")
    layers = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    ranks, rank = {}, None
    for line in layers.splitlines():
        m = re.match(r"(\d+)\. ", line)
        if m:
            rank = int(m.group(1))
        elif not line.startswith("   "):
            rank = None
        if rank is not None:
            for name in re.findall(r"`resnet\.(\w+)`", line):
                if (SRC / name).is_dir() or (SRC / f"{name}.py").is_file():  # not `resnet.create_model`
                    ranks.setdefault(name, rank)
    return ranks


def test_the_documented_layers_are_the_checked_ones() -> None:
    documented = documented_ranks()
    checked = {name: rank for name, rank in RANK.items() if name and name != "__main__"}
    assert documented == checked


# -- (b) private names ---------------------------------------------------------------------------------------
def private_violations(imports: list[Import]) -> list[str]:
    out = []
    for imp in imports:
        source, targets = package_of(imp.file), target_packages(imp)
        if targets == [source]:
            continue
        private_module = [p for p in imp.module.split(".") if p.startswith("_") and not p.startswith("__")]
        private_names = [n for n in imp.names if n.startswith("_") and not n.startswith("__")]
        for name in private_module + private_names:
            out.append(f"{imp.file}:{imp.line}: imports {imp.module}.{name} from another package -> {imp.file} -> "
                       f"{imp.module}.{name}")
    return out


def test_no_private_name_is_imported_across_packages() -> None:
    assert_clean("private name imported across packages (make it public)", private_violations(all_imports()),
                 ALLOWED_PRIVATE, key=lambda v: v.split(" -> ", 1)[1])


# -- (c) long functions --------------------------------------------------------------------------------------
def long_functions(root: Path = SRC) -> list[str]:
    out = []
    for path, rel in _files(root):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                marked = any(LONG_MARK in lines[i] for i in (node.lineno - 1, node.lineno - 2) if i >= 0)
                if length > MAX_LINES and not marked:
                    out.append(f"{rel}:{node.lineno}: {node.name} is {length} lines (over {MAX_LINES}, no "
                               f"'{LONG_MARK}' reason) -> {rel}::{node.name}")
    return out


def test_no_function_is_longer_than_80_lines_without_a_reason() -> None:
    assert_clean("function to split (or mark with '# long: <reason>')", long_functions(), ALLOWED_LONG,
                 key=lambda v: v.rsplit(" -> ", 1)[1])


# -- (d) the library never speaks in flags, command lines or development paths ------------------------------
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# the user-facing command composed as a command line, or a command named in backticks (`resnet list`): the library
# names the call instead (`resnet.list_models()`), which the CLI shows as its command (cli/options.py)
_COMMAND_LINE = re.compile(r"python3? -m resnet\b(?!\.)|`resnet [a-z][a-z-]*")
_DEV_PATH = re.compile(r"\.\./shared/|\bshared/data\b")  # this checkout's data folder, not the user's


def _text(node: ast.AST) -> str:
    """The string literals under ``node`` in source order, f-string fields as ``{}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return "".join(_text(child) for child in ast.iter_child_nodes(node))


def _docstrings(tree: ast.AST) -> set[int]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, kinds) and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)}


def _strings(tree: ast.AST) -> list[tuple[int, str, bool]]:
    """Every string literal (an f-string as one, its fields as ``{}``): ``(line, text, is_docstring)``."""
    docs = _docstrings(tree)
    inside = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.append((node.lineno, _text(node), False))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside:
            out.append((node.lineno, node.value, id(node) in docs))
    return out


def library_strings(root: Path = SRC) -> list[str]:
    """Strings of library files (everything outside ``cli/``) that name a flag or compose a command line (a
    docstring may describe the command line), or name a development path (none may)."""
    out = []
    for path, rel in _files(root):
        if rel.startswith("cli/") or rel == "__main__.py":
            continue
        for line, text, doc in _strings(ast.parse(path.read_text(encoding="utf-8"))):
            found = [*([] if doc else _FLAG.findall(text) + _COMMAND_LINE.findall(text)), *_DEV_PATH.findall(text)]
            if found:
                out.append(f"{rel}:{line}: names {', '.join(found)} (write an option as Python spells it, in "
                           f"backticks; no development path) -> {rel}")
    return out


def test_library_strings_name_no_flag_command_line_or_development_path() -> None:
    assert_clean("flag, command line or development path in a library string", library_strings(), ALLOWED_FLAG_FILES,
                 key=lambda v: v.rsplit(" -> ", 1)[1])


# -- (e) the command line is passed down from main(argv) ---------------------------------------------------
def _main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":``"""
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and isinstance(node.test.left, ast.Name)
            and node.test.left.id == "__name__" and any(isinstance(c, ast.Constant) and c.value == "__main__"
                                                         for c in node.test.comparators))


def argv_readers(root: Path = SRC) -> list[str]:
    """Reads of ``sys.argv`` anywhere but in ``cli.main`` and a module's ``__main__`` block: whatever needs the
    command line (the command a run records) is given it by ``main(argv)``."""
    out = []
    for path, rel in _files(root):
        if rel == "__main__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        entry = [n for n in tree.body if _main_guard(n)]
        if rel == "cli/__init__.py":
            entry += [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
        allowed = {id(n) for top in entry for n in ast.walk(top)}
        for node in ast.walk(tree):
            reads = (isinstance(node, ast.Attribute) and node.attr == "argv" and isinstance(node.value, ast.Name)
                     and node.value.id == "sys")
            imports = isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "argv" for a in node.names)
            if (reads or imports) and id(node) not in allowed:
                out.append(f"{rel}:{node.lineno}: reads sys.argv (take the command line from main(argv)) -> {rel}")
    return out


def test_no_code_below_main_reads_the_command_line() -> None:
    assert_clean("sys.argv read below main", argv_readers(), set(), key=lambda v: v.rsplit(" -> ", 1)[1])


# -- the checks themselves can fail ---------------------------------------------------------------------------
def _all_checks(root: Path) -> list[str]:
    imports = all_imports(root)
    return (layer_violations(imports) + private_violations(imports) + library_strings(root) + long_functions(root)
            + argv_readers(root))


@pytest.mark.parametrize(("rel", "code", "expected"), [
    ("models/x.py", "from ..weights import find\n", "imports weights (layer 2) at module level"),
    ("models/x.py", "def f():\n    from resnet.weights import find\n", "imports weights (layer 2) inside a function"),
    ("train/x.py", "from ..evaluate.protocols import center\n", "sibling train imports evaluate"),
    ("__init__.py", "from .serve import create_app\n", "the facade imports serve eagerly"),
    ("explain/x.py", "from ..data.decode import _to_array\n", "imports data.decode._to_array from another package"),
    ("deploy/x.py", "raise UsageError(f'use --mode {m}')\n", "names --mode"),
    ("deploy/x.py", "import warnings\nwarnings.warn('try ' + '--fold-bn')\n", "names --fold-bn"),
    ("train/x.py", "HELP = {'stop': 'stopped as asked (--stop-after)'}\n", "names --stop-after"),
    ("weights/x.py", "def f(n):\n    return f'run {n} --as x'\n", "names --as"),
    ("weights/x.py", "raise UsageError('`mode` is eager; import it with `resnet weights import`')\n", "names `resnet weights"),
    ("analysis/x.py", "CMD = ['python', '-m', 'resnet', 'train']\nLINE = 'python -m resnet train m'\n", "names python -m resnet"),
    ("data/x.py", '"""Layout: see ../shared/data/pennfudan."""\n', "names ../shared/"),
    ("evaluate/x.py", "raise DataError('e.g. `data_dir` ../shared/data/x')\n", "names ../shared/"),
    ("deploy/x.py", "def f():\n" + "    x = 1\n" * 80, "f is 81 lines"),
    ("cli/cmd_x.py", "import sys\ndef run(args):\n    return sys.argv[1:]\n", "reads sys.argv"),
    ("analysis/x.py", "from sys import argv\n", "reads sys.argv"),
])
def test_each_check_catches_its_violation(tmp_path: Path, rel: str, code: str, expected: str) -> None:
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text(code)
    found = _all_checks(tmp_path)
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize(("rel", "code"), [
    ("weights/x.py", "from ..models.registry import create_model\nfrom .. import __version__\n"),
    ("deploy/x.py", "raise UsageError('`mode` is eager; import it: `resnet.weights.import_file(\\'FILE\\', \\'m:t\\')`')\n"),
    ("deploy/x.py", '"""Times a network (``resnet bench --mode int8`` on the command line)."""\nX = -1\n'),
    ("analysis/x.py", "WORKER = [sys.executable, '-m', 'resnet.analysis.runs.worker']\n"),
    ("deploy/x.py", "# long: one table, read top to bottom\ndef f():\n" + "    x = 1\n" * 80),
    ("cli/x.py", "from ..serve import create_app\nraise UsageError('--port must be positive')\n"),
    ("models/x.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..weights import find\n"),
    ("cli/__init__.py", "import sys\ndef main(argv=None):\n    return list(sys.argv[1:] if argv is None else argv)\n"),
    ("analysis/x.py", "import sys\nif __name__ == '__main__':\n    sys.exit(main(sys.argv[1:]))\n"),
])
def test_what_is_allowed_passes(tmp_path: Path, rel: str, code: str) -> None:
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text(code)
    assert _all_checks(tmp_path) == []


def test_cycle_detection() -> None:
    imports = [Import("models/a.py", 1, "data.x", (), False, False), Import("data/b.py", 1, "models.y", (), False, False)]
    assert package_cycles(imports) == ["data -> models -> data"]
