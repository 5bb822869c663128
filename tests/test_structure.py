"""The package's shape: the layers below hold (no module imports one of a layer above it), no import
cycle between its modules (function-level imports and subpackages included), and no function longer
than about 60 lines unless its docstring says why.

The layers, from the bottom:

0. ``FOUNDATION``: ``declared`` (one declaration per setting), ``config``, ``spaces``, ``gymnax_import``,
   ``frames`` (an env state drawn as a picture);
1. the env suites' adapters (``suites`` and ``suites.*``): on the foundation only (the env seam,
   ``envs``, reaches them; they never reach back);
2. ``CORE``: the library's training core (envs, policy, train, parallel, pbt, ...);
3. ``RUN_FILES``: run directories, read and written (``settings``, ``rundir``, ``factories``,
   ``loading``: ``jaxppo.load_policy`` and ``load_run`` read what the command line wrote; ``video``
   and ``exporting``: a run's agent as a video or an exported function; ``plotting``: learning curves
   as a picture), and the package's public names (``jaxppo/__init__``);
4. ``COMMAND_LINE``: the ``cli`` package (``run`` and its host loop and outputs, the ``evaluate``,
   ``plot``, ``merge``, ``render`` and ``export`` commands, their one parser) and the
   ``python -m jaxppo.<command>`` modules that start them. Nothing below imports it.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "jaxppo"
MAX_LINES = 60
EXCUSE = "Longer than 60 lines:"  # a docstring that starts a sentence with this says why

FOUNDATION = {"declared", "config", "spaces", "gymnax_import", "frames"}
CORE = {"envs", "distributions", "networks", "policy", "gae", "losses", "normalize", "xla_cpu", "train", "parallel",
        "evaluation", "pbt", "probes", "stats"}  # fmt: skip
RUN_FILES = {"settings", "rundir", "factories", "loading", "video", "exporting", "plotting", "__init__"}
COMMANDS = {"run", "evaluate", "plot", "merge", "render", "export"}  # python -m jaxppo.<command>: jaxppo.cli.<command>


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts) if parts != ["__init__"] else "__init__"


def _modules() -> dict[str, ast.Module]:
    """Every module of the package, subpackages included (``suites.base``; a package is its ``__init__``)."""
    return {_module_name(path): ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    if module in FOUNDATION:
        return 0
    if module == "suites" or module.startswith("suites."):
        return 1
    for layer, members in ((2, CORE), (3, RUN_FILES)):
        if module in members:
            return layer
    if module in COMMANDS or module == "cli" or module.startswith("cli."):
        return 4
    raise AssertionError(f"jaxppo.{module} is in no layer: add it to one in tests/test_structure.py")


def _imports(tree: ast.Module) -> set[str]:
    """jaxppo modules a module imports anywhere in its body (top level or inside functions):
    ``from jaxppo.a.b import c`` names ``a.b`` and ``a.b.c`` (the one that is a module counts)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "jaxppo":
                if len(parts) > 1:
                    found.add(".".join(parts[1:]))
                found.update(".".join([*parts[1:], alias.name]) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.partition(".")[2] for a in node.names if a.name.startswith("jaxppo."))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m in _imports(tree) if m in modules and m != name} for name, tree in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"train", "run", "cli.run", "suites", "suites.base", "suites.brax"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_no_module_imports_from_a_layer_above_it():
    graph = import_graph()
    upward = [f"{a} -> {b}" for a, imported in graph.items() for b in sorted(imported) if _layer(b) > _layer(a)]
    assert not upward, upward


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_function_is_longer_than_60_lines_without_a_reason():
    long = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES and EXCUSE not in (ast.get_docstring(node) or ""):
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, long


def test_every_command_module_starts_its_command_in_the_cli_package():
    graph = import_graph()
    for command in COMMANDS:
        assert f"cli.{command}" in graph[command], f"jaxppo.{command} does not start jaxppo.cli.{command}"
    library = [m for m in graph if _layer(m) < 4 and any(i == "cli" or i.startswith("cli.") for i in graph[m])]
    assert not library, f"library modules that import the command line: {library}"
