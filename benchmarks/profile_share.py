"""Read a py-spy raw (collapsed-stack) profile: matrix-product share and hot spots.

py-spy (`record --native --format raw`) samples the main thread's stack, Python and C
frames together; each line is "frame;frame;...;leaf count". A sample counts as
* "dense matmul" when any frame is in OpenBLAS or is a gemm/gemv/matmul kernel,
* "sparse product" when any frame is a SciPy sparse kernel (csr_*/csc_*, sparsetools),
* "other" otherwise: elementwise NumPy, gathers, Python overhead, allocation.
Hot spots are attributed to the innermost Python frame of each sample (file:line).

Only the main thread counts. Recorded with `--threads`, each stack starts with a
"thread (id): name" frame; nnctl's helper threads (nnctl.threads) work on a pass while
the main thread does its own share of it, so their samples would count that time twice,
and their idle waits would count as "other". A profile without thread frames is taken
whole.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

PY_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]+\.py):(?P<line>\d+)\)$")


def is_dense(frame: str) -> bool:
    """A native (C) frame of OpenBLAS or a matmul kernel; Python frames never count
    (SciPy's Python-level `_matmul_multivector` is a sparse product)."""
    if PY_FRAME.match(frame):
        return False
    low = frame.lower()
    return "openblas" in low or "gemm" in low or "gemv" in low or "matmul" in low or "cblas" in low


def is_sparse(frame: str) -> bool:
    """SciPy's sparse kernels (sparsetools) or the Python code of scipy.sparse products."""
    low = frame.lower()
    return ("sparsetools" in low or "scipy/sparse/" in low or "scipy.sparse" in low
            or re.search(r"\bcs[rc]_\w+", low) is not None)


def short_path(path: str) -> str:
    """nnctl/layers/recurrent.py instead of the absolute path of a checkout."""
    for anchor in ("nnctl/", "numpy/", "scipy/", "benchmarks/"):
        at = path.rfind(anchor)
        if at >= 0:
            return path[at:]
    return path


def summarise(raw_path: Path, top: int = 12) -> dict:
    kinds = Counter()
    by_line, by_func = Counter(), Counter()
    total = 0
    for line in Path(raw_path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if frames[0].startswith("thread ("):
            if not frames[0].endswith("MainThread"):
                continue
            frames = frames[1:]
        total += n
        kind = ("sparse product" if any(is_sparse(f) for f in frames)
                else "dense matmul" if any(is_dense(f) for f in frames) else "other")
        kinds[kind] += n
        py = [m for m in (PY_FRAME.match(f) for f in frames) if m]
        if py:
            leaf = py[-1]
            where = f"{short_path(leaf['file'])}:{leaf['line']}"
            by_line[(where, leaf["func"], kind)] += n
            by_func[f"{leaf['func']} ({short_path(leaf['file'])})"] += n
    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "share": {k: kinds[k] / total for k in ("dense matmul", "sparse product", "other")},
        "hot_lines": [{"where": w, "function": f, "kind": k, "share": n / total}
                      for (w, f, k), n in by_line.most_common(top)],
        "hot_functions": [{"function": f, "share": n / total} for f, n in by_func.most_common(top)],
    }
