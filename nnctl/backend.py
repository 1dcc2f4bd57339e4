"""The array backend follows the data: `get_xp(x)` is NumPy for NumPy arrays, CuPy for CuPy arrays.

CuPy is optional and imported here and nowhere else, so every other module can say
`xp = get_xp(x)` and run the same code on either. Never `import cupy as np`.
"""

from __future__ import annotations

import numpy as np

try:  # optional: `pip install "nnctl[gpu]"`
    import cupy as _cupy  # type: ignore
    _cupy_error = None
except Exception as error:  # ImportError, or a CuPy without a usable CUDA driver
    _cupy, _cupy_error = None, error

# Devices the test suite registers (tests/strict_device.py): name -> an array module with
# CuPy's conversion rules. Empty outside the tests, so configs can name only cpu and gpu.
_test_devices: dict = {}

GPU_INSTALL = ("pip install 'nnctl[gpu]' (CUDA 12.x) or pip install 'nnctl[gpu-cuda13]' (CUDA 13.x); "
               "nvidia-smi prints the CUDA version")


def register_test_device(name: str, module) -> None:
    """Tests only: make `device: <name>` put arrays in `module` (an array module whose
    arrays are `module.ndarray`, with asarray and asnumpy), standing in for the GPU."""
    _test_devices[name] = module


def get_xp(x):
    """The array module (numpy or cupy) that owns `x`."""
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy
    if _test_devices:
        for module in _test_devices.values():
            if isinstance(x, module.ndarray):
                return module
    return np


def devices() -> tuple[str, ...]:
    """The names a config's `device:` may take."""
    return ("cpu", "gpu", *_test_devices)


def device_kind(device: str) -> str:
    """"cpu" or "gpu": what a device is for the models' `devices` (a test device stands in for the GPU)."""
    return "cpu" if device == "cpu" else "gpu"


def gpu_problem() -> str | None:
    """None when `device: gpu` can run here, else one line saying what is missing."""
    if gpu_available():
        return None
    if _cupy is None:
        missing = isinstance(_cupy_error, ModuleNotFoundError) and _cupy_error.name == "cupy"
        reason = "CuPy is not installed" if missing else \
            f"CuPy failed to import ({type(_cupy_error).__name__}: {str(_cupy_error).splitlines()[0][:120]})"
        return f"device: gpu needs CuPy, and {reason}; {GPU_INSTALL}; or set device: cpu"
    try:
        count = _cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # no driver, or a driver older than CuPy's CUDA
        why = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
        return f"device: gpu: CuPy is installed but no usable NVIDIA driver was found ({why}); {driver_advice()}"
    if count == 0:
        return "device: gpu: CuPy is installed but it sees no GPU (CUDA_VISIBLE_DEVICES?); or set device: cpu"
    return None


def driver_advice() -> str:
    """What to do, from the CUDA the driver runs and the CUDA this CuPy was built for."""
    def version(query) -> int:  # e.g. 12020 for CUDA 12.2; 0 when it cannot be read (no driver)
        try:
            return int(query())
        except Exception:
            return 0

    driver = version(_cupy.cuda.runtime.driverGetVersion)
    built = version(_cupy.cuda.runtime.runtimeGetVersion)
    if not driver:
        return "install the NVIDIA driver (nvidia-smi must list the GPU), or set device: cpu"

    def name(v: int) -> str:
        return f"{v // 1000}.{v % 1000 // 10}"

    if driver // 1000 < 12:
        return f"the driver runs CUDA up to {name(driver)} and CuPy needs 12 or newer: update the driver"
    if built and built // 1000 > driver // 1000:
        wheel = "pip install 'nnctl[gpu]' (cupy-cuda12x)" if driver // 1000 == 12 else GPU_INSTALL
        return (f"this CuPy is built for CUDA {name(built)} but the driver runs CUDA up to {name(driver)}: "
                f"uninstall it and {wheel}, or update the driver")
    return (f"the driver (CUDA {name(driver)}) should run this CuPy (CUDA {name(built) if built else '?'}): check "
            f"nvidia-smi, CUDA_VISIBLE_DEVICES and access to /dev/nvidia*; or set device: cpu")


def gpu_available() -> bool:
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def as_numpy(x):
    """A NumPy copy of a host or device array (checkpoints are always NumPy)."""
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy.asnumpy(x)
    if _test_devices:
        xp = get_xp(x)
        if xp is not np:
            return xp.asnumpy(x)
    return np.asarray(x)


def to_device(x, device: str):
    """Move an array to "cpu" or "gpu" (or a device the tests registered)."""
    if device == "cpu":
        return as_numpy(x)
    if device == "gpu":
        if _cupy is None:
            raise RuntimeError(gpu_problem())
        return _cupy.asarray(x)
    if device in _test_devices:
        return _test_devices[device].asarray(as_numpy(x))
    raise ValueError(f"unknown device {device!r}; choose cpu or gpu")


def uniform(rng: np.random.Generator, shape, dtype, like):
    """Uniform [0, 1) numbers of `shape` and `dtype`, made where `like` lives.

    NumPy: drawn from `rng`, as always. A device: drawn there by its own module, from a
    Philox generator seeded with one integer taken from `rng`; so the host stream (which
    checkpoints save) fixes every mask, and no mask is drawn on the host and copied.
    CuPy keys its generators with 32 bits of the seed: two of a long run's ~1e5 masks may
    then repeat, which does no harm to dropout.
    """
    xp = get_xp(like)
    if xp is np:
        return rng.random(shape, dtype=dtype)
    key = int(rng.integers(2**63))
    return xp.random.Generator(xp.random.Philox4x3210(key)).random(shape, dtype=dtype)


def tree_to_device(tree, device: str):
    """to_device over a batch or a carried state: arrays inside tuples, NamedTuples and lists.

    The Trainer moves each batch once per step with this, so everything a layer sees in a
    step already lives where the weights live. None and Python scalars pass through.
    """
    if tree is None or isinstance(tree, (int, float, str)):
        return tree
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # NamedTuple (ContextBatch)
        return type(tree)(*(tree_to_device(t, device) for t in tree))
    if isinstance(tree, (tuple, list)):
        return type(tree)(tree_to_device(t, device) for t in tree)
    return to_device(tree, device)


def distinct_rows(index, num_rows: int):
    """(rows, inverse): the sorted distinct values of an int array in [0, num_rows), and
    each element's position among them (np.unique(index, return_inverse=True)).

    When num_rows is not much larger than the index, a presence table of num_rows flags
    (no sort) is several times faster than np.unique, whose return_inverse argsorts.
    """
    index = np.asarray(index).reshape(-1)
    if num_rows <= 8 * len(index) + 4096:
        present = np.zeros(num_rows, dtype=bool)
        present[index] = True
        position = np.cumsum(present) - 1
        return np.flatnonzero(present), position[index]
    rows, inverse = np.unique(index, return_inverse=True)
    return rows, inverse.reshape(-1)


def scatter_add(dst, index, src):
    """dst[index] += src, where repeated indices accumulate (np.add.at semantics).

    Used by embedding backward passes, where one word appears many times in a batch.
    Returns the distinct indices touched, sorted (what `Param.add_rows` records).

    NumPy route for a 2-D `dst` with row indices (measured on a 10k x 100 table):
    * indices all distinct (layers that pre-sum their rows): plain `dst[index] += src`
      is exact and ~2.5x faster than a flattened np.add.at;
    * repeats: the rows are summed by one sparse product S @ src, with S a (distinct x n)
      0/1 matrix built in CSC form without sorting, ~3.5x faster than a flattened
      np.add.at (itself several times faster than the 2-D np.add.at).
    """
    xp = get_xp(dst)
    if xp is np and dst.ndim >= 2:
        index = np.asarray(index).reshape(-1)
        src = np.asarray(src, dtype=dst.dtype).reshape((len(index),) + dst.shape[1:])
        rows, inverse = distinct_rows(index, dst.shape[0])
        if len(rows) == len(index):
            dst[index] += src
        else:
            import scipy.sparse as sp

            n = len(index)
            summing = sp.csc_matrix((np.ones(n, dtype=dst.dtype), inverse, np.arange(n + 1)),
                                    shape=(len(rows), n))
            dst[rows] += np.asarray(summing @ src.reshape(n, -1)).reshape((len(rows),) + dst.shape[1:])
        return rows
    if xp is np:
        np.add.at(dst, index, src)
    else:
        xp.add.at(dst, index, src)
    return xp.unique(xp.asarray(index).reshape(-1))


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed large blocks instead of returning them to the OS.

    By default glibc serves blocks above a threshold with mmap and gives them back on
    free, so a NumPy temporary of a few MB is page-faulted in afresh at every training
    step; measured here, that made a sparse Adam step several times slower than the
    arithmetic alone. Keeping them costs at most the peak memory we already needed.
    Returns False (and changes nothing) where the C library is not glibc.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    largest_heap_block = 32 * 1024 * 1024  # glibc refuses mmap thresholds above this on 64-bit
    ok = libc.mallopt(m_mmap_threshold, largest_heap_block) == 1
    return ok and libc.mallopt(m_trim_threshold, 1 << 30) == 1
