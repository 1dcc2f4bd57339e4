"""`device: strict`, a stand-in for the GPU that CI can run: NumPy underneath, CuPy's rules on top.

Code written for CuPy without a GPU breaks in predictable ways, and each of them fails here:

* converting a device array to a NumPy array implicitly (`np.asarray(x)`, `host[...] = x`,
  `float(x)` of a non-scalar) raises TypeError, as `cupy.ndarray.__array__` does; the
  explicit ways stay open (`x.get()`, `xp.asnumpy(x)`, `float()` / `.item()` of a scalar);
* mixing a device array with a host ndarray in an operation or an index raises TypeError,
  as CuPy's kernels do ("Unsupported type <class 'numpy.ndarray'>");
* a NumPy function applied to a device array (`np.tanh(x)`, `np.concatenate([x, y])`)
  raises. Here the stand-in is stricter than CuPy, which would hand such calls to itself
  through `__array_ufunc__`/`__array_function__`: nnctl's rule is `xp = get_xp(x)`, and the
  NumPy calls CuPy cannot take over (`np.add.reduceat`, `np.r_`, `out=` a host array) are
  caught only if every one is;
* the module `get_xp` returns offers only the names CuPy offers (tests/data/cupy_names.txt).

How: `StrictArray` holds a NumPy array and is not one. It sets `__array_ufunc__ = None`
(so NumPy ufuncs and ndarray operators refuse it) and answers `__array_function__` and
`__array__` with errors; its own operators, methods and indexing unwrap strict operands,
refuse host arrays, run NumPy, and wrap the result. `StrictModule` exposes each allowed
name as a wrapper doing the same around the NumPy function of that name. So the numbers
are NumPy's, bit for bit: a float64 run on this device equals the CPU run.

`register()` (tests/conftest.py calls it) makes `device: strict` known to nnctl.backend;
outside the test suite the name does not exist.
"""

from __future__ import annotations

import functools
import operator
import types
from pathlib import Path

import numpy as np

NAMES_FILE = Path(__file__).parent / "data" / "cupy_names.txt"
IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly.")


def cupy_names(path: Path = NAMES_FILE) -> dict[str, set[str]]:
    """{"cupy": {...}, "cupy.random": {...}, ..., "ufunc methods": {...}} from the names file."""
    sections: dict[str, set[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("version:"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), set())
        else:
            current.add(line)
    return sections


def cupy_version(path: Path = NAMES_FILE) -> str:
    return next(line.split(":", 1)[1].strip() for line in path.read_text().splitlines()
                if line.startswith("version:"))


class HostTransfers:
    """Counts explicit copies: `count` device -> host (get, asnumpy, float/int/bool/item of a
    scalar), `to_device` host -> device (xp.asarray of a host array)."""

    count = 0
    to_device = 0


def _refuse_host(value, where: str):
    raise TypeError(f"Unsupported type {type(value)} in {where}: a host numpy.ndarray mixed with a "
                    f"strict device array (CuPy refuses it too); move it with xp.asarray first")


def unwrap(value, where: str = "an operation"):
    """Strict arrays -> their NumPy array; host ndarrays -> TypeError; containers recursively."""
    if isinstance(value, StrictArray):
        return value._a
    if isinstance(value, np.ndarray):
        _refuse_host(value, where)
    if isinstance(value, (list, tuple)):
        return type(value)(unwrap(v, where) for v in value)
    if isinstance(value, dict):
        return {k: unwrap(v, where) for k, v in value.items()}
    return value  # Python and NumPy scalars, dtypes, slices, None, Ellipsis: as CuPy takes them


def wrap(value):
    """NumPy results -> strict arrays (scalars become 0-d arrays, as CuPy's reductions give)."""
    if isinstance(value, np.ndarray):
        return StrictArray(value)
    if isinstance(value, np.generic):
        return StrictArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(wrap(v) for v in value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value


def _binary(op, reflected=False):
    def method(self, other):
        if isinstance(other, np.ndarray):
            _refuse_host(other, f"operator {op.__name__}")
        if not isinstance(other, (StrictArray, int, float, complex, bool, np.generic)):
            return NotImplemented
        other = unwrap(other)
        return wrap(op(other, self._a) if reflected else op(self._a, other))
    return method


def _inplace(op):
    def method(self, other):
        if isinstance(other, np.ndarray):
            _refuse_host(other, f"operator {op.__name__}")
        op(self._a, unwrap(other))
        return self
    return method


# ndarray methods CuPy's ndarray also has (those nnctl may call); others raise AttributeError.
METHODS = ("all", "any", "argmax", "argmin", "argsort", "astype", "clip", "conj", "copy", "cumsum",
           "diagonal", "dot", "fill", "flatten", "max", "mean", "min", "nonzero", "prod", "ravel",
           "repeat", "reshape", "round", "sort", "squeeze", "std", "sum", "swapaxes", "take",
           "transpose", "var", "view")
ATTRIBUTES = ("dtype", "itemsize", "nbytes", "ndim", "shape", "size", "strides")


class StrictArray:
    """A device array of the strict stand-in; see the module docstring."""

    __slots__ = ("_a",)
    __array_ufunc__ = None  # np.tanh(x), np.add(x, y), host + x: NumPy declines, x's operators decide
    __hash__ = None

    def __init__(self, array: np.ndarray):
        self._a = array

    # -- refusing NumPy ---------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT)

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} called on a strict device array; NumPy functions do not "
                        f"take device arrays here: use xp = get_xp(x) and xp.{func.__name__}")

    # -- explicit transfers -----------------------------------------------------------------
    def get(self):
        HostTransfers.count += 1
        return self._a.copy()

    def _scalar(self, kind):
        if self._a.ndim:
            raise TypeError(f"{kind.__name__}() of a {self._a.shape} strict device array: only a 0-d "
                            f"array converts to a Python number; index it or use .get()")
        HostTransfers.count += 1
        return kind(self._a)

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __bool__(self):
        return self._scalar(bool)

    def __index__(self):
        if self._a.ndim or self._a.dtype.kind not in "iub":
            raise TypeError("only a 0-d integer strict array can be an index")
        HostTransfers.count += 1
        return operator.index(self._a[()])

    def item(self):
        if self._a.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        HostTransfers.count += 1
        return self._a.item()

    def tolist(self):
        HostTransfers.count += 1
        return self._a.tolist()

    # -- the array's face -------------------------------------------------------------------
    def __getattr__(self, name):
        if name in ATTRIBUTES:
            return getattr(self._a, name)
        if name in METHODS:
            method = getattr(self._a, name)

            @functools.wraps(method)
            def call(*args, **kwargs):
                return wrap(method(*unwrap(args, f".{name}()"), **unwrap(kwargs, f".{name}()")))
            return call
        raise AttributeError(f"'StrictArray' has no attribute {name!r} (not offered by the stand-in; "
                             f"check that cupy.ndarray has it, then add it to tests/strict_device.py)")

    @property
    def T(self):
        return StrictArray(self._a.T)

    @property
    def flags(self):
        return self._a.flags

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (StrictArray(row) if isinstance(row, np.ndarray) else wrap(row) for row in self._a)

    def __repr__(self):
        return f"strict({self._a!r})"

    def __getitem__(self, key):
        return wrap(self._a[unwrap(key, "an index")])

    def __setitem__(self, key, value):
        self._a[unwrap(key, "an index")] = unwrap(value, "an assigned value")

    def __neg__(self):
        return StrictArray(-self._a)

    def __pos__(self):
        return StrictArray(+self._a)

    def __abs__(self):
        return StrictArray(abs(self._a))

    def __invert__(self):
        return StrictArray(~self._a)

    __add__, __radd__, __iadd__ = _binary(operator.add), _binary(operator.add, True), _inplace(operator.iadd)
    __sub__, __rsub__, __isub__ = _binary(operator.sub), _binary(operator.sub, True), _inplace(operator.isub)
    __mul__, __rmul__, __imul__ = _binary(operator.mul), _binary(operator.mul, True), _inplace(operator.imul)
    __truediv__, __rtruediv__ = _binary(operator.truediv), _binary(operator.truediv, True)
    __itruediv__ = _inplace(operator.itruediv)
    __floordiv__, __rfloordiv__ = _binary(operator.floordiv), _binary(operator.floordiv, True)
    __mod__, __rmod__ = _binary(operator.mod), _binary(operator.mod, True)
    __pow__, __rpow__, __ipow__ = _binary(operator.pow), _binary(operator.pow, True), _inplace(operator.ipow)
    __matmul__, __rmatmul__ = _binary(operator.matmul), _binary(operator.matmul, True)
    __and__, __rand__, __iand__ = _binary(operator.and_), _binary(operator.and_, True), _inplace(operator.iand)
    __or__, __ror__, __ior__ = _binary(operator.or_), _binary(operator.or_, True), _inplace(operator.ior)
    __xor__, __rxor__, __ixor__ = _binary(operator.xor), _binary(operator.xor, True), _inplace(operator.ixor)
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)


# -- the module ------------------------------------------------------------------------------
def _strict_function(func, name: str):
    @functools.wraps(func)
    def call(*args, **kwargs):
        return wrap(func(*unwrap(args, f"{name}()"), **unwrap(kwargs, f"{name}()")))
    return call


class StrictUfunc:
    """A NumPy ufunc that takes strict arrays only, with the methods CuPy's ufuncs have."""

    def __init__(self, ufunc: np.ufunc, methods: set[str]):
        self._ufunc, self.__name__ = ufunc, ufunc.__name__
        for method in methods:
            setattr(self, method, _strict_function(getattr(ufunc, method), f"{ufunc.__name__}.{method}"))

    def __call__(self, *args, **kwargs):
        return wrap(self._ufunc(*unwrap(args, f"{self.__name__}()"), **unwrap(kwargs, f"{self.__name__}()")))


def _to_device(copy_default):
    """xp.asarray (copy only if needed) / xp.array (copy): the explicit host -> device door,
    as in CuPy, which takes NumPy arrays here. A host array is always copied (moved)."""
    def to_device(a, dtype=None, copy=copy_default, order="K", **kwargs):
        if isinstance(a, StrictArray):
            array = np.array(a._a, dtype=dtype, order=order, copy=copy, **kwargs)
            return a if array is a._a else StrictArray(array)
        if isinstance(a, np.ndarray):
            HostTransfers.to_device += 1
        return StrictArray(np.array(a, dtype=dtype, order=order, copy=True, **kwargs))
    return to_device


class StrictGenerator:
    """cupy.random.Generator over a NumPy generator: draws come back as strict arrays."""

    draws = 0  # class-wide count of arrays drawn, for tests that want to see device draws

    def __init__(self, bit_generator):
        self._gen = np.random.Generator(bit_generator)

    def random(self, size=None, dtype=np.float64, out=None):  # the one draw nnctl makes (dropout)
        StrictGenerator.draws += 1
        return wrap(self._gen.random(size, dtype=dtype))


def _random_module(allowed: set[str]) -> types.SimpleNamespace:
    bit_generators = {"Philox4x3210": np.random.Philox, "XORWOW": np.random.PCG64,
                      "MRG32k3a": np.random.SFC64}  # NumPy's counterparts: other numbers, same use
    ns = types.SimpleNamespace()
    for name in allowed:
        if name in bit_generators:
            setattr(ns, name, lambda seed=None, *, size=-1, _kind=bit_generators[name]: _kind(seed))
    ns.Generator = StrictGenerator
    ns.default_rng = lambda seed=None: StrictGenerator(np.random.PCG64(seed))
    return ns


class StrictModule(types.SimpleNamespace):
    """The array module of the strict device: only CuPy's names, each taking strict arrays."""


def build_module() -> StrictModule:
    names = cupy_names()
    ufunc_methods = names["ufunc methods"]
    module = StrictModule()
    missing = object()
    for name in names["cupy"]:
        value = getattr(np, name, missing)
        if value is missing:
            continue  # CuPy-only names (asnumpy, get_array_module, ...) are set below, if needed
        if isinstance(value, np.ufunc):
            value = StrictUfunc(value, ufunc_methods)
        elif isinstance(value, types.ModuleType) or isinstance(value, type):
            pass  # dtypes (float32), exceptions and submodules; submodules are replaced below
        elif callable(value):
            value = _strict_function(value, name)
        setattr(module, name, value)
    module.asarray = module.asanyarray = _to_device(copy_default=None)
    module.array = _to_device(copy_default=True)
    module.ndarray = StrictArray
    module.asnumpy = lambda a, stream=None: (a.get() if isinstance(a, StrictArray) else np.asarray(a))
    module.get_array_module = lambda *args: module if any(isinstance(a, StrictArray) for a in args) else np
    module.random = _random_module(names["cupy.random"])
    module.linalg = types.SimpleNamespace(**{n: _strict_function(getattr(np.linalg, n), f"linalg.{n}")
                                             for n in names["cupy.linalg"]
                                             if callable(getattr(np.linalg, n, None))})
    stride_tricks = types.SimpleNamespace(**{
        n: _strict_function(getattr(np.lib.stride_tricks, n), f"lib.stride_tricks.{n}")
        for n in names["cupy.lib.stride_tricks"] if hasattr(np.lib.stride_tricks, n)})
    module.lib = types.SimpleNamespace(stride_tricks=stride_tricks)
    for name in ("fft", "cuda", "testing", "polynomial", "exceptions"):  # not stood in for
        module.__dict__.pop(name, None)
    return module


strict = build_module()


def register(name: str = "strict") -> None:
    from nnctl import backend

    backend.register_test_device(name, strict)
