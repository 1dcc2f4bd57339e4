"""Rebuild tests/data/cupy_names.txt from a CuPy wheel, without installing or importing CuPy.

    pip download cupy-cuda12x --no-deps -d /tmp/cupy      # or cupy-cuda13x; any machine, no GPU
    python tests/data/read_cupy_names.py /tmp/cupy/cupy_cuda12x-*.whl > tests/data/cupy_names.txt

Reads the public names that each module's __init__.py (and lib/stride_tricks.py) binds at
its top level: imports (and the subpackages they bind, like `cupy.lib`), assignments,
functions and classes, in every branch of a top-level if/try (CuPy picks some by NumPy
version). `cupy.random.Generator` is bound lazily by a module __getattr__, so it is added
by hand; the ufunc methods come from CuPy's `cupy.ufunc` reference page (docs.cupy.dev),
since ufuncs are compiled code. The list is used by tests/test_cupy_names.py (every xp.<name>
nnctl calls) and tests/strict_device.py (the stand-in offers only these names).
"""

from __future__ import annotations

import ast
import re
import sys
import zipfile

MODULES = {  # module -> file in the wheel
    "cupy": "cupy/__init__.py",
    "cupy.random": "cupy/random/__init__.py",
    "cupy.linalg": "cupy/linalg/__init__.py",
    "cupy.fft": "cupy/fft/__init__.py",
    "cupy.lib": "cupy/lib/__init__.py",
    "cupy.lib.stride_tricks": "cupy/lib/stride_tricks.py",
}
LAZY = {"cupy.random": ["Generator"]}
UFUNC_METHODS = ["accumulate", "at", "outer", "reduce", "reduceat"]


def bound_names(body, module: str) -> set[str]:
    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
            # `from cupy.lib._shape_base import x` also binds the subpackage `lib` on cupy
            inner = getattr(node, "module", None) or ""
            if inner.startswith(module + "."):
                names.add(inner[len(module) + 1:].split(".")[0])
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.If):
            names |= bound_names(node.body, module) | bound_names(node.orelse, module)
        elif isinstance(node, ast.Try):
            for part in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                names |= bound_names(part, module)
    return {n for n in names if not n.startswith("_")}


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        version_src = zf.read("cupy/_version.py").decode()
        version = re.search(r"__version__ = '([^']+)'", version_src).group(1)
        print(f"# Public names of CuPy {version}, read from {wheel.rsplit('/', 1)[-1]}")
        print("# by tests/data/read_cupy_names.py (see its docstring for how); one [module] per block.")
        print(f"version: {version}")
        for module, path in MODULES.items():
            names = bound_names(ast.parse(zf.read(path).decode()).body, module) | set(LAZY.get(module, []))
            print(f"\n[{module}]")
            print("\n".join(sorted(names)))
    print("\n[ufunc methods]")
    print("\n".join(UFUNC_METHODS))


if __name__ == "__main__":
    main(sys.argv[1])
