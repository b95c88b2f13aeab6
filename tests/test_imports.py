"""No import circles in probgen/ (issue 29, point 6), checked by walking the import graph:
neither among module-level imports nor counting the imports made inside functions (the usual
way to defer a circle rather than remove it). The inference knot that was left (binding -> the
results' tracer -> spec; durable <-> runs.resume; mcmc <-> pathfinder) was untied by moving the
pieces both sides read into modules that import neither: `probgen.tracing` (one trace of a
model, unconstrained starts) and `durable.file_path`."""

import ast
from pathlib import Path

from conftest import REPO


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (REPO / "probgen").rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        modules[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return modules


def _graph(module_level_only: bool) -> dict[str, set[str]]:
    """module -> the probgen modules it imports. `from package import name` is an edge to the
    submodule `package.name` when there is one, else to the package (whose __init__ runs)."""
    modules, graph = _modules(), {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        nodes = tree.body if module_level_only else list(ast.walk(tree))
        targets = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                wanted = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                          for a in node.names]
            else:
                continue
            for target in wanted:
                if target == "probgen.models" or target.startswith("probgen.models."):
                    continue  # the families' tree (models/, installed as probgen.models), not probgen/'s
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected sets of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_module_level_imports_form_no_circle():
    assert _circles(_graph(module_level_only=True)) == []


def test_no_circle_even_through_imports_in_functions():
    assert _circles(_graph(module_level_only=False)) == []


def test_the_walk_finds_a_circle_where_there_is_one():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_probgen_is_in_rooms_by_job():
    """Issue 29, point 6: probgen/'s top level holds a few modules every room shares (errors,
    the spec and its hooks, devices, interruption, tracing); the rest lives in a package per job: data,
    infer, checks (numbers only), report (content, rendering, run-folder I/O), runs (what is
    done with a finished run: sample, predict, resume), cli."""
    top = sorted(path.stem for path in (REPO / "probgen").glob("*.py") if path.stem != "__init__")
    assert len(top) <= 10, top
    packages = {path.parent.name for path in (REPO / "probgen").glob("*/__init__.py")}
    assert {"data", "infer", "checks", "report", "runs", "cli"} <= packages, packages


def test_no_family_is_another_familys_library():
    """Issue 29, point 6: what families share lives in models/_common (mixtures, tabular,
    networks, generative, lm); a family imports itself, _common and probgen, never another
    family (the VAE was made's, the GAN's and the generators' library)."""
    import re

    from probgen.spec import builtin_model_names

    families = set(builtin_model_names())
    found = []
    for path in (REPO / "models").rglob("*.py"):
        parts = path.relative_to(REPO / "models").with_suffix("").parts
        own = parts[0]
        for match in re.finditer(r"probgen\.models\.(\w+)", path.read_text()):
            if match.group(1) in families and match.group(1) != own:
                found.append(f"{path.relative_to(REPO)}: probgen.models.{match.group(1)}")
    assert not found, found


def test_every_family_package_is_laid_out_one_way():
    """Issue 29, point 6: a family that outgrew one module is a package laid out one way:
    model, data, parts (what a method or the report asks of it beyond the model), evaluation
    (numbers), report (sections and figures); only the report draws (imports matplotlib)."""
    import ast

    roles = {"model", "data", "parts", "evaluation", "report"}
    packages = [init.parent for init in (REPO / "models").glob("*/__init__.py") if not init.parent.name.startswith("_")]
    assert len(packages) >= 5, packages
    for package in packages:
        modules = {path.stem for path in package.glob("*.py")} - {"__init__"}
        assert modules <= roles, (package.name, sorted(modules - roles))
        for path in package.glob("*.py"):
            if path.stem == "report":
                continue
            imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                        if isinstance(node, ast.Import) for alias in node.names}
            imported |= {(node.module or "").split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                         if isinstance(node, ast.ImportFrom)}
            assert "matplotlib" not in imported, path.relative_to(REPO)
