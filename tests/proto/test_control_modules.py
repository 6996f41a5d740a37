"""The control protocol's models live in four modules; ``lanpeer_proto.control`` stays the one
import path for all of them (the daemon, peer-cli and the tests import only it)."""

from __future__ import annotations

import ast
import inspect
from types import ModuleType

import pytest
from lanpeer_proto import (
    control,
    control_events,
    control_requests,
    control_types,
    control_views,
)


def defined_names(module: ModuleType) -> set[str]:
    """The public names a module defines itself (classes, functions, constants, type aliases)."""
    names: set[str] = set()
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


@pytest.mark.parametrize(
    "module",
    [control_types, control_requests, control_views, control_events],
    ids=lambda m: m.__name__,
)
def test_control_re_exports_every_public_name(module: ModuleType) -> None:
    names = defined_names(module)
    assert sorted(names - set(control.__all__)) == []
    for name in names:
        assert getattr(control, name) is getattr(module, name)
