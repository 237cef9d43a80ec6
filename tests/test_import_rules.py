"""The layering rules of DESIGN.md §1, checked on every import statement (AST, not grep)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"protocol", "drivers", "edge", "cloud", "provisioning", "firmware_sim", "webui", "mchub", "tests", "bench"}
ALLOWED = {
    "protocol": set(),
    "drivers": {"protocol"},
    "edge": {"protocol", "drivers", "edge", "provisioning", "webui"},  # provisioning: enrollment messages
    "cloud": {"protocol", "cloud", "provisioning", "webui"},
    "provisioning": {"protocol", "provisioning"},
    "firmware_sim": {"protocol", "firmware_sim"},  # never a driver's decoder
    "webui": {"protocol", "webui"},
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in imports(path) - ALLOWED[package] - {package}:
            bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "layering rule broken (DESIGN.md §1):\n" + "\n".join(bad)


# -- module level (issue 19): no import circles, and the hub's web layer sees only its narrow view -----------------

PACKAGES = ("protocol", "drivers", "edge", "cloud", "provisioning", "firmware_sim", "webui", "mchub")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def module_graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports anywhere: at the top, inside functions, under TYPE_CHECKING
    (a circle hidden in a function or a type-only import still ties the two modules together)."""
    modules = _modules()

    def owner(name: str) -> str | None:  # the module a dotted name lives in
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                found = owner(target)
                if found is not None and found != module:
                    graph[module].add(found)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_module_imports_itself_in_a_circle() -> None:
    """Before issue 19: edge daemon ↔ web, edge config ↔ plugins, enrolled ↔ identity, MLLP connection ↔ server."""
    found = circles(module_graph())
    assert not found, "import circle(s); break them with a narrow Protocol or by moving the shared part down:\n" + \
        "\n".join(" ↔ ".join(group) for group in found)


def test_the_circle_finder_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_hubs_web_layer_sees_the_hub_only_through_its_view() -> None:
    """edge/web and edge/status.py are typed against edge.hub_view.HubView, never the daemon's Hub."""
    graph = module_graph()
    web = [m for m in graph if m.startswith("edge.web") or m == "edge.status"]
    assert web and not [m for m in web if "edge.daemon" in graph[m]]
    reaching = [f"{path.relative_to(ROOT)}: {needle}" for path in [*(ROOT / "edge" / "web").rglob("*.py"),
                                                                   ROOT / "edge" / "status.py"]
                for needle in ("hub.writer", "hub.supervisor", "hub.sync.cfg", "hub.sessions", "hub.channel")
                if needle in path.read_text(encoding="utf-8")]
    assert not reaching, "the web layer reaches into the hub's parts:\n" + "\n".join(reaching)


def test_the_cloud_folder_has_no_loose_modules_beyond_its_doors() -> None:
    """Issue 19: cloud/ had 20 loose modules; each now lives in the package of the job it serves (docs/cloud.md)."""
    loose = sorted(p.stem for p in (ROOT / "cloud").glob("*.py"))
    assert loose == ["__init__", "cli", "errors", "outbox"], f"group new cloud modules by their job: {loose}"
