"""The package's shape: no import circle, and every layer imports only the layers below it."""

from __future__ import annotations

import ast
import os
from typing import Dict, List, Set

import yaxmpp

PACKAGE_DIR = os.path.dirname(os.path.abspath(yaxmpp.__file__))

#: Layers from the bottom up; a module may import its own layer and the ones below.
LAYERS: List[Set[str]] = [
    {"yaxmpp._version", "yaxmpp.errors"},
    {
        "yaxmpp.protocol",
        "yaxmpp.protocol.ns",
        "yaxmpp.protocol.limits",
        "yaxmpp.protocol.redact",
        "yaxmpp.protocol.stanzas",
        "yaxmpp.protocol.xmltext",
        "yaxmpp.protocol.features",
        "yaxmpp.protocol.state",
        "yaxmpp.protocol.events",
        "yaxmpp.protocol.parser",
        "yaxmpp.protocol.sasl",
        "yaxmpp.protocol.disk",
        "yaxmpp.protocol.pushscan",
        "yaxmpp.protocol.core",
    },
    {"yaxmpp.deadline", "yaxmpp.cancel", "yaxmpp.compression", "yaxmpp.tls", "yaxmpp.transport", "yaxmpp.dial"},
    {"yaxmpp.https", "yaxmpp.diskapi", "yaxmpp.resync", "yaxmpp.oauth", "yaxmpp.credentials"},
    {"yaxmpp.policy", "yaxmpp.options", "yaxmpp.delivery"},
    {"yaxmpp.gap"},
    {"yaxmpp.connection", "yaxmpp.doctor"},
    {"yaxmpp.session"},
    {"yaxmpp.client"},
    {
        "yaxmpp",
        "yaxmpp.testing",
        "yaxmpp.testing.options",
        "yaxmpp.testing.stanzas",
        "yaxmpp.testing.router",
        "yaxmpp.testing.conversation",
        "yaxmpp.testing.session",
        "yaxmpp.testing.peer",
        "yaxmpp.testing.server",
        "yaxmpp.testing.rest",
        "yaxmpp.testing.oauth",
        "yaxmpp.testing.console",
        "yaxmpp.testing.__main__",
        "yaxmpp.demo",
    },
    {"yaxmpp.cli.stored"},
    {"yaxmpp.cli.common"},
    {"yaxmpp.cli.events"},
    {"yaxmpp.cli.execute"},
    {"yaxmpp.cli.watch", "yaxmpp.cli.login", "yaxmpp.cli.doctor"},
    {"yaxmpp.cli"},
    {"yaxmpp.__main__"},
]


def _modules() -> Dict[str, str]:
    found = {}
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-3].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imports(module: str, path: str, known: Set[str]) -> Set[str]:
    """The package's modules that ``module`` imports at module level (not inside functions
    or ``if TYPE_CHECKING``)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    targets: Set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:
                candidate = "%s.%s" % (origin, alias.name)
                targets.add(candidate if candidate in known else origin)
        elif isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
    return {t for t in targets if t in known and t != module}


def _graph() -> Dict[str, Set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_every_module_is_in_a_layer():
    placed = set().union(*LAYERS)
    assert set(_graph()) <= placed, sorted(set(_graph()) - placed)


def test_no_import_circle():
    graph = _graph()
    state: Dict[str, int] = {}

    def visit(node: str, trail: List[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: %s" % " -> ".join(trail + [node, nxt]))
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_every_layer_imports_only_downward():
    rank = {name: index for index, layer in enumerate(LAYERS) for name in layer}
    upward = [
        (module, target)
        for module, targets in _graph().items()
        for target in targets
        if rank.get(target, -1) > rank.get(module, len(LAYERS))
    ]
    assert upward == []


def test_the_sans_io_core_imports_no_io():
    forbidden = {"socket", "ssl", "threading", "select", "selectors", "time", "asyncio"}
    for module, path in _modules().items():
        if not module.startswith("yaxmpp.protocol"):
            continue
        tree = ast.parse(open(path, encoding="utf-8").read())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names.add((node.module or "").split(".")[0])
        assert not names & forbidden, (module, names & forbidden)
