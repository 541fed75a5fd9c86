"""Loading the user's script: as ``__main__`` on the root, as a module on the other workers.

Workers import the script under the name ``__scoop_main__`` (so its ``if __name__ ==
"__main__":`` block does not run) and alias it as ``__main__``; the root aliases its ``__main__``
as ``__scoop_main__``. Functions and classes of the script then pickle by name in both directions.
Names bound only inside the ``__main__`` block exist on the root alone; they are pickled by value.
"""

from __future__ import annotations

import ast
import os
import sys
import types
from collections.abc import Iterable

WORKER_MODULE_NAME = "__scoop_main__"


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    parts = [node.test.left, *node.test.comparators]
    names = {p.id for p in parts if isinstance(p, ast.Name)}
    constants = {p.value for p in parts if isinstance(p, ast.Constant)}
    return names == {"__name__"} and constants == {"__main__"}


def _bound_names(statements: Iterable[ast.stmt], into: set[str]) -> None:
    for node in statements:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            into.add(node.name)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                into.add((alias.asname or alias.name).split(".")[0])
            continue
        for child in ast.walk(node):
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                into.add(child.id)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                into.add(child.name)


def names_only_under_main_guard(source: str) -> frozenset[str]:
    """Top-level names bound inside ``if __name__ == "__main__":`` blocks and nowhere else."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return frozenset()
    top: set[str] = set()
    guarded: set[str] = set()
    for node in tree.body:
        if _is_main_guard(node):
            assert isinstance(node, ast.If)
            _bound_names(node.body, guarded)
            _bound_names(node.orelse, top)
        else:
            _bound_names([node], top)
    return frozenset(guarded - top)


def read_script(path: str) -> tuple[str, types.CodeType]:
    """Read and compile the user's script."""
    with open(path, "rb") as handle:
        source_bytes = handle.read()
    source = source_bytes.decode("utf-8", errors="replace")
    return source, compile(source_bytes, path, "exec", dont_inherit=True)


def prepare(path: str, args: list[str]) -> None:
    """Make ``sys.argv`` and ``sys.path`` what the script expects when it runs as a program."""
    sys.argv = [path, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))


def new_module(path: str, name: str) -> types.ModuleType:
    """A fresh module for the script, registered as both ``__main__`` and ``__scoop_main__``."""
    module = types.ModuleType(name)
    module.__file__ = os.path.abspath(path)
    module.__builtins__ = __builtins__  # type: ignore[attr-defined]
    sys.modules["__main__"] = module
    sys.modules[WORKER_MODULE_NAME] = module
    return module


def blank_main(path: Iterable[str]) -> types.ModuleType:
    """An empty ``__main__`` for an Executor's worker, which runs no script.

    The client's ``__main__`` (a notebook, a script that opened the Executor) exists only there:
    its functions and classes travel by value. ``path`` is the client's ``sys.path``, so that
    its other modules import here by name as they do there.
    """
    for entry in reversed([p for p in path if p not in sys.path]):
        sys.path.insert(0, entry)
    sys.argv = [""]
    module = types.ModuleType("__main__")
    sys.modules["__main__"] = sys.modules[WORKER_MODULE_NAME] = module
    return module
