"""The stages import one way (docs/architecture.md), checked on the source of every module.

Each module of `page4d_viewer` is parsed with `ast`; every import counts: module-level ones,
type-only ones (under `if TYPE_CHECKING:`) and function-local ones. `STAGES` is the one table
of who may import whom; `NO_LIBRARIES` says which stages never load torch or a UI library,
following module-level imports through the package (what `import` really runs).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import page4d_viewer

PACKAGE = "page4d_viewer"
ROOT = Path(page4d_viewer.__file__).parent

# What orchestration may import; the cli may import all of that and everything above it.
_BELOW_ORCHESTRATION = (
    "base",
    "geometry",
    "sources",
    "result",
    "model",
    "run_contract",
    "inference",
    "evaluation",
    "training",
)

# stage -> (the modules it holds, by prefix; the stages it may import besides itself).
# A module belongs to the stage of its longest matching prefix. Order of the data flow:
# errors/settings < geometry < sources, result < model < run_contract < inference
# < evaluation, training < orchestration < viewer (scene < tabs and panel < server) < cli.
STAGES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "base": (("page4d_viewer", "page4d_viewer.errors", "page4d_viewer.settings"), ()),
    "geometry": (("page4d_viewer.geometry",), ("base",)),
    "sources": (("page4d_viewer.sources",), ("base", "geometry")),
    "result": (("page4d_viewer.result",), ("base", "geometry")),
    # The network only: no clips, no files of ours, no results.
    "model": (("page4d_viewer.model",), ("base", "geometry")),
    # Options, progress and the backend protocol: below both inference and the viewer.
    "run_contract": (("page4d_viewer.run_contract",), ("base", "geometry", "sources", "result")),
    "inference": (
        ("page4d_viewer.inference",),
        ("base", "geometry", "sources", "result", "model", "run_contract"),
    ),
    # Metrics on arrays and results; whatever runs the network to score it is orchestration.
    "evaluation": (("page4d_viewer.evaluation",), ("base", "geometry", "sources", "result")),
    "training": (("page4d_viewer.training",), ("base", "geometry", "sources", "result", "model")),
    "orchestration": (("page4d_viewer.orchestration",), _BELOW_ORCHESTRATION),
    # The viewer receives a backend: never inference, the model, training or orchestration.
    "viewer.scene": (
        ("page4d_viewer.viewer.scene",),
        ("base", "geometry", "sources", "result", "run_contract", "evaluation"),
    ),
    # The panel, tabs/ and their helpers: above the scene (the viewer's lowest part), below
    # the server (app, proxy, sessions: the viewer's top).
    "viewer": (
        ("page4d_viewer.viewer",),
        ("base", "geometry", "sources", "result", "run_contract", "evaluation", "viewer.scene"),
    ),
    "viewer.server": (
        ("page4d_viewer.viewer.server",),
        (
            "base",
            "geometry",
            "sources",
            "result",
            "run_contract",
            "evaluation",
            "viewer.scene",
            "viewer",
        ),
    ),
    # The composition root, and the two entry points that only call it.
    "cli": (
        ("page4d_viewer.cli", "page4d_viewer.__main__", "page4d_viewer.evaluate_default"),
        (*_BELOW_ORCHESTRATION, "orchestration", "viewer.scene", "viewer", "viewer.server"),
    ),
}

# Modules (by prefix) that must not load these libraries (or modules of the package) when
# imported, following module-level imports through the package: a saved result replays
# without torch (`page4d-viewer view`), and nothing below the viewer pulls in a UI toolkit.
_BELOW_THE_VIEWER = (
    "page4d_viewer.errors",
    "page4d_viewer.settings",
    "page4d_viewer.geometry",
    "page4d_viewer.sources",
    "page4d_viewer.result",
    "page4d_viewer.run_contract",
    "page4d_viewer.evaluation",
)
NO_LIBRARIES: tuple[tuple[tuple[str, ...], frozenset[str]], ...] = (
    (_BELOW_THE_VIEWER, frozenset({"torch", "gradio", "viser"})),
    (
        ("page4d_viewer.viewer", "page4d_viewer.cli.view"),
        frozenset({"torch", "page4d_viewer.inference", "page4d_viewer.model"}),
    ),
    (
        ("page4d_viewer.model", "page4d_viewer.inference", "page4d_viewer.training"),
        frozenset({"gradio", "viser"}),
    ),
    (
        ("page4d_viewer.cli.infer", "page4d_viewer.cli.export", "page4d_viewer.cli.evaluate"),
        frozenset({"gradio", "viser"}),
    ),
    (("page4d_viewer.viewer.scene",), frozenset({"gradio", "gradio_client"})),
    # The display settings are plain numbers: the panel reads them without the 3-D server.
    (("page4d_viewer.viewer.scene.display",), frozenset({"viser"})),
)

# Function-local imports of the package left in viewer modules while they are reshaped
# (owned by the viewer refactor): (module, imported module). Nothing else may import the
# package from inside a function; an entry that no longer exists fails the test.
LOCAL_IMPORTS_OWNED_BY_THE_VIEWER_REFACTOR: frozenset[tuple[str, str]] = frozenset(
    {
        ("page4d_viewer.viewer.server.sessions", "page4d_viewer.viewer.scene"),
    }
)

# Edges inside the viewer against its order, left while it is reshaped (owned by the viewer
# refactor): (module, imported module). An entry that no longer exists fails the test.
VIEWER_EDGES_OWNED_BY_THE_VIEWER_REFACTOR: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Import:
    """One import statement's target in a module of the package.

    Attributes:
        module: the importing module, e.g. "page4d_viewer.cli.app".
        line: its line number.
        kind: "module", "type-only" or "function-local".
        target: the imported module, absolute ("torch", "page4d_viewer.result.mask").
        names: the names taken from it (empty for `import x`).
        reason: the comment on the line above (or at the end of the line), "" when none.
    """

    module: str
    line: int
    kind: str
    target: str
    names: tuple[str, ...]
    reason: str

    def where(self) -> str:
        return f"{self.module}:{self.line} ({self.kind})"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _reason(lines: list[str], line: int) -> str:
    """The comment that explains an import: at the end of its line, or on the line above it
    (or above the imports right before it, one comment for a group)."""
    own = lines[line - 1]
    if "#" in own:
        return own.split("#", 1)[1].strip()
    above = line - 2
    while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
        above -= 1
    comment = lines[above].strip() if above >= 0 else ""
    return comment.removeprefix("#").strip() if comment.startswith("#") else ""


def _imports_of(module: str, path: Path) -> list[Import]:
    source = path.read_text()
    lines = source.splitlines()
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for statement in child.body:
                    visit_statement(statement, "type-only" if kind == "module" else kind)
                for statement in child.orelse:
                    visit_statement(statement, kind)
            else:
                visit_statement(child, kind)

    def visit_statement(node: ast.AST, kind: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            kind = "function-local"
        if isinstance(node, ast.Import):
            for alias in node.names:
                reason = _reason(lines, node.lineno)
                found.append(Import(module, node.lineno, kind, alias.name, (), reason))
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            if target == "__future__":
                return
            names = tuple(alias.name for alias in node.names)
            reason = _reason(lines, node.lineno)
            found.append(Import(module, node.lineno, kind, target, names, reason))
            # `from package import submodule` imports the submodule too.
            for name in names:
                if f"{target}.{name}" in MODULES:
                    found.append(Import(module, node.lineno, kind, f"{target}.{name}", (), reason))
        else:
            visit(node, kind)

    visit(ast.parse(source), "module")
    return found


IMPORTS = [found for module, path in MODULES.items() for found in _imports_of(module, path)]


def _internal(found: Import) -> bool:
    return found.target == PACKAGE or found.target.startswith(PACKAGE + ".")


def stage_of(module: str) -> str:
    """The stage of a module of the package: the one with its longest matching prefix."""
    best, best_length = "", -1
    for stage, (prefixes, _) in STAGES.items():
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_length:
                best, best_length = stage, len(prefix)
    return best


def _against_the_order(found: Import) -> bool:
    source, target = stage_of(found.module), stage_of(found.target)
    return source != target and target not in STAGES[source][1]


def test_every_stage_of_the_table_may_import_only_stages_of_the_table() -> None:
    for stage, (_, allowed) in STAGES.items():
        assert set(allowed) <= set(STAGES), stage
        assert stage not in allowed, stage


def test_every_module_belongs_to_a_stage() -> None:
    assert all(stage_of(module) for module in MODULES)


def test_every_import_follows_the_stage_order() -> None:
    wrong = [
        f"{found.where()}: {found.module} imports {found.target} "
        f"({stage_of(found.module)} may not import {stage_of(found.target)})"
        for found in IMPORTS
        if _internal(found)
        and _against_the_order(found)
        and (found.module, found.target) not in VIEWER_EDGES_OWNED_BY_THE_VIEWER_REFACTOR
    ]
    assert not wrong, "imports against the stage order:\n" + "\n".join(wrong)


def test_the_viewer_edges_left_to_its_refactor_still_exist() -> None:
    edges = {(found.module, found.target) for found in IMPORTS if _against_the_order(found)}
    stale = VIEWER_EDGES_OWNED_BY_THE_VIEWER_REFACTOR - edges
    assert not stale, "fixed, drop from the list: " + ", ".join(sorted(map(str, stale)))


def test_the_package_is_never_imported_inside_a_function() -> None:
    local = [found for found in IMPORTS if found.kind == "function-local" and _internal(found)]
    wrong = [
        f"{found.where()}: {found.module} imports {found.target} inside a function"
        for found in local
        if (found.module, found.target) not in LOCAL_IMPORTS_OWNED_BY_THE_VIEWER_REFACTOR
    ]
    assert not wrong, "import these at the top of the module:\n" + "\n".join(wrong)
    left = {(found.module, found.target) for found in local}
    stale = LOCAL_IMPORTS_OWNED_BY_THE_VIEWER_REFACTOR - left
    assert not stale, "gone, drop from the list: " + ", ".join(sorted(map(str, stale)))


def test_a_library_imported_inside_a_function_says_why() -> None:
    # Kept only for a heavy dependency of an optional path (OpenCV for optical flow,
    # matplotlib for a figure, trimesh for an export...), with the reason beside it.
    unexplained = [
        f"{found.where()}: {found.target}"
        for found in IMPORTS
        if found.kind == "function-local"
        and not _internal(found)
        and not found.reason
        and found.module.split(".")[:2] != [PACKAGE, "viewer"]
    ]
    assert not unexplained, "a comment above each says why it is local:\n" + "\n".join(unexplained)


def _in(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _loaded_with(module: str, run_at_import: dict[str, list[Import]]) -> dict[str, str]:
    """Every module of the package that importing ``module`` runs -> the module that
    imported it first (module-level imports only; parent packages run first)."""
    loaded: dict[str, str] = {}
    pending = [(module, "")]
    while pending:
        name, by = pending.pop()
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            parent = ".".join(parts[:end])
            if parent in MODULES and parent not in loaded:
                loaded[parent] = by or parent
                pending += [
                    (found.target, parent) for found in run_at_import[parent] if _internal(found)
                ]
    return loaded


def test_torch_free_and_ui_free_stages_never_load_those_libraries() -> None:
    run_at_import: dict[str, list[Import]] = {module: [] for module in MODULES}
    for found in IMPORTS:
        if found.kind == "module":
            run_at_import[found.module].append(found)
    wrong = []
    for prefixes, banned in NO_LIBRARIES:
        for module in (m for m in MODULES if _in(m, prefixes)):
            loaded = _loaded_with(module, run_at_import)
            wrong += [
                f"{module} loads {found.target}: {found.where()}, "
                f"reached through {loaded[found.module]}"
                for importer in loaded
                for found in run_at_import[importer]
                if _in(found.target, banned)
            ]
    assert not wrong, "\n".join(sorted(set(wrong)))
