"""Find a spec's `trainer: module:function` without running any of it.

A trainer is code: the study imports it (hpo.trial.process.load_trainer), `hpo check` must not.
`importlib.util.find_spec("a.b")` would import package `a` to read its `__path__`, so only the
top-level name goes through the import system's finders (which locate files, they run nothing);
each submodule is then looked up by path search in its parent's folders. The function is found
by parsing the module's source with `ast`. Limits: a package that rewrites its own `__path__` at
import time, a compiled module, or a module that builds its names dynamically (`from x import *`,
a module `__getattr__`) cannot be checked this way; those get a warning, not a refusal, and the
study's first trial imports them for real.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from hpo.errors import HpoError


@dataclass(frozen=True)
class TrainerSource:
    """Where the trainer's module lives, and what could not be told without importing it."""

    path: Path | None
    warning: str | None = None


def find_trainer(name: str) -> TrainerSource:
    module, _, function = name.partition(":")
    spec = find_module(module, name)
    if spec.origin is None and spec.submodule_search_locations is not None:
        raise HpoError(
            f"trainer {name!r}: {module} is a folder without __init__.py, not a module; give an importable module:function"
        )
    origin = Path(spec.origin) if spec.origin and spec.has_location else None
    if origin is None or origin.suffix != ".py":
        return TrainerSource(
            origin,
            f"trainer {name!r}: {origin or module} is not Python source; it is checked when the study imports it",
        )
    try:
        tree = ast.parse(origin.read_bytes(), filename=str(origin))
    except SyntaxError as e:
        raise HpoError(
            f"trainer {name!r}: {origin}, line {e.lineno}: {e.msg}; fix the module"
        ) from None
    except (OSError, ValueError) as e:
        raise HpoError(f"trainer {name!r}: {origin} cannot be read ({e})") from None
    found = defines(tree.body, function)
    if found is None:
        return TrainerSource(
            origin,
            f"trainer {name!r}: {origin} builds its names at import time; {function!r} is checked when the study imports it",
        )
    if not found:
        raise HpoError(
            f"trainer {name!r}: {origin} defines no top-level {function!r}; give an existing module:function"
        )
    return TrainerSource(origin)


def find_module(module: str, name: str) -> importlib.machinery.ModuleSpec:
    """The module's spec, found as load_trainer would import it (sys.path, then the current
    directory), importing nothing."""
    parts = module.split(".")
    spec = _top_level(parts[0])
    for i in range(1, len(parts)):
        if spec is None:
            break
        locations = spec.submodule_search_locations
        if locations is None:
            raise HpoError(
                f"trainer {name!r}: {'.'.join(parts[:i])} is a module, not a package, so it has no {parts[i]!r}"
            )
        full = ".".join(parts[: i + 1])
        loaded = sys.modules.get(full)
        spec = (
            loaded.__spec__
            if loaded is not None and loaded.__spec__
            else importlib.machinery.PathFinder.find_spec(full, list(locations))
        )
    if spec is None:
        raise HpoError(
            f"trainer {name!r}: no module {module!r} on the import path or under {os.getcwd()}; give an importable module:function"
        )
    return spec


def _top_level(name: str) -> importlib.machinery.ModuleSpec | None:
    try:
        spec = importlib.util.find_spec(name)  # a top-level name: finders only locate it
    except (ImportError, ValueError):
        spec = None
    return spec or importlib.machinery.PathFinder.find_spec(name, [os.getcwd()])


def defines(body: list[ast.stmt], name: str) -> bool | None:
    """Whether module-level code binds `name` (a def, class, assignment or import, also under a
    top-level if/try/with); None when the module may bind it in ways the source does not show."""
    dynamic = False
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == name:
                return True
            dynamic |= node.name == "__getattr__"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    dynamic = True
                elif (alias.asname or alias.name.split(".")[0]) == name:
                    return True
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t)):
                return True
        else:
            for block in _blocks(node):
                inner = defines(block, name)
                if inner:
                    return True
                dynamic |= inner is None
    return None if dynamic else False


def _blocks(node: ast.stmt) -> list[list[ast.stmt]]:
    if isinstance(node, ast.If):
        return [node.body, node.orelse]
    if isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
        return [node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody]  # type: ignore[attr-defined]
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return [node.body]
    return []
