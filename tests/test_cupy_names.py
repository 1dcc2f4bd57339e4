"""Every `xp.<name>` nnctl calls is a name CuPy has (tests/data/cupy_names.txt, read from a CuPy wheel).

A NumPy function CuPy lacks would break `device: gpu` only on a GPU; this scan of nnctl's
source fails on any machine instead. Roots scanned: a variable named `xp`, a `get_xp(...)`
call, and `_cupy` (backend.py's CuPy module). `xp.a.b` is checked as far as the list goes:
submodules (`xp.random.Philox4x3210`, `xp.lib.stride_tricks.sliding_window_view`) by their
own section, ufunc methods (`xp.add.at`) by CuPy's ufunc methods; `cuda` only at its first name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from strict_device import cupy_names, cupy_version

NNCTL = Path(__file__).parent.parent / "nnctl"
SUBMODULES = {"random": "cupy.random", "linalg": "cupy.linalg", "fft": "cupy.fft", "lib": "cupy.lib",
              "lib.stride_tricks": "cupy.lib.stride_tricks"}
UNLISTED_SUBMODULES = ("cuda",)  # CUDA runtime bindings: not read into the list


def is_root(node) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ("xp", "_cupy")
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "get_xp"


def xp_chains(source: str) -> list[tuple[str, int]]:
    """("tanh", line), ("random.Philox4x3210", line), ...: attribute chains off an array module."""
    tree = ast.parse(source)
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}  # xp.random in xp.random.X
    chains = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        parts, line = [], node.lineno
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if is_root(node):
            chains.append((".".join(reversed(parts)), line))
    return sorted(set(chains))


def missing_in_cupy(chain: str, names: dict[str, set[str]]) -> str | None:
    """None if CuPy has `chain`, else the part it lacks."""
    parts = chain.split(".")
    if parts[0] not in names["cupy"]:
        return parts[0]
    if len(parts) == 1 or parts[0] in UNLISTED_SUBMODULES:
        return None
    if parts[0] == "lib" and parts[1] == "stride_tricks" and len(parts) > 2:
        return None if parts[2] in names["cupy.lib.stride_tricks"] else chain
    if parts[0] in SUBMODULES:
        return None if parts[1] in names[SUBMODULES[parts[0]]] else chain
    if isinstance(getattr(np, parts[0], None), np.ufunc):
        return None if parts[1] in names["ufunc methods"] else chain
    return chain  # an attribute of a CuPy function or class: not in the list, look it up and add it


def used_names() -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for path in sorted(NNCTL.rglob("*.py")):
        for chain, line in xp_chains(path.read_text(encoding="utf-8")):
            used.setdefault(chain, []).append(f"{path.relative_to(NNCTL.parent)}:{line}")
    return used


def test_every_xp_name_nnctl_calls_is_one_cupy_has():
    names = cupy_names()
    used = used_names()
    assert {"tanh", "add.at", "einsum", "random.Philox4x3210"} <= set(used), sorted(used)  # the scan sees them
    lacking = {chain: where for chain, where in used.items() if missing_in_cupy(chain, names)}
    assert not lacking, (f"CuPy {cupy_version()} (tests/data/cupy_names.txt) lacks: "
                         + "; ".join(f"xp.{c} at {', '.join(w)}" for c, w in sorted(lacking.items())))


def test_the_scan_flags_what_cupy_lacks():
    names = cupy_names()
    src = ("def f(x):\n    xp = get_xp(x)\n    a = xp.add.reduceat(x, [0])\n"
           "    return get_xp(x).ma.masked_array(x), xp.random.PCG64(1), xp.tanh(a), xp.lib.stride_tricks.as_strided\n")
    chains = [c for c, _ in xp_chains(src)]
    assert sorted(chains) == ["add.reduceat", "lib.stride_tricks.as_strided", "ma.masked_array",
                              "random.PCG64", "tanh"]
    assert [c for c in chains if missing_in_cupy(c, names)] == ["ma.masked_array", "random.PCG64"]
    assert cupy_version().count(".") == 2
