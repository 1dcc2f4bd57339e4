"""Optimizers: SGD, momentum, Nesterov, AdaGrad, RMSProp, Adam, AdamW, NT-ASGD; gradient clipping.

An optimizer takes the model's `named_params()` at construction and keys its state by
the parameters' dotted names, so the state can be checkpointed and resumed:

    opt = OPTIMIZERS.build({"type": "adam", "lr": 1e-3}, path="optimizer",
                           params=model.named_params())
    model.zero_grad(); model.loss(batch); model.backward()
    clip_grad_norm(model.params(), 5.0)
    opt.lr = schedule.lr(epoch, step)      # the schedule sets lr before each step
    opt.step()

`Optimizer.step()` applies weight decay and then calls each subclass's `update`, which is
the paper's rule on plain arrays (p, g, state), a few lines each. The base class decides
which arrays those are:

* dense Param: the whole weight, gradient and state arrays, updated in place;
* sparse Param (a big embedding table; see `Param.add_rows`): only the rows in
  `p.touched_rows` are gathered, updated, and scattered back ("lazy" updates, as in
  word2vec's SGD and TensorFlow's LazyAdam). Untouched rows keep their weights AND their
  state (no momentum decay, no Adam moment decay), and no pass over the full table is
  ever made. Adam still uses the global step count for its bias correction.

All state has the parameter's dtype. Hyperparameters are held as Python floats, because
under NumPy 2 a float32 array times a np.float64 scalar is computed in float64.

Two hooks let an optimizer that averages its iterates (NT-ASGD) take part in training;
for every other optimizer they do nothing. The Trainer calls `observe(valid_loss)` after
each epoch's validation, and evaluates and saves `best` inside `with opt.averaged():`,
which puts the averaged weights into the Params for the duration and the trained ones back
after.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterable

import numpy as np

from nnctl.backend import as_numpy, get_xp
from nnctl.errors import CheckpointError
from nnctl.layers.base import Param
from nnctl.registry import Registry

OPTIMIZERS = Registry("optimizer")


# -- validation helpers (ValueError; the registry turns it into a ConfigError) ------------
def _require_positive(name: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def _require_non_negative(name: str, value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)


def _require_unit_interval(name: str, value: float) -> float:
    """A decay rate in [0, 1): 1 would freeze the average at its initial zeros."""
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


class Optimizer:
    """Base class: holds params, lr, step count and per-parameter state; runs `update`.

    Subclasses list their per-parameter state arrays in `slots` (allocated eagerly as
    zeros with the parameter's shape and dtype) and implement `update(p, g, state)`.

    Weight decay is L2 regularisation added to the gradient, g ← g + weight_decay·p,
    before the update rule (so with Adam it is "Adam + L2"); a subclass with
    `decoupled_decay = True` (AdamW) instead shrinks the weights, p ← p − lr·weight_decay·p,
    before the update, and leaves the gradient alone.
    """

    slots: tuple[str, ...] = ()
    decoupled_decay = False

    def __init__(self, lr: float, weight_decay: float, *, params: dict[str, Param]):
        self.lr = _require_positive("lr", lr)
        self.weight_decay = _require_non_negative("weight_decay", weight_decay)
        self.params: dict[str, Param] = dict(params)
        seen: dict[int, str] = {}
        for name, p in self.params.items():
            if id(p) in seen:  # it would be updated twice per step
                raise ValueError(f"parameters '{seen[id(p)]}' and '{name}' are the same Param; "
                                 f"pass each once (Layer.named_params() already lists tied weights once)")
            seen[id(p)] = name
        self.step_count = 0
        self.state: dict[str, dict] = {
            name: {slot: get_xp(p.data).zeros_like(p.data) for slot in self.slots}
            for name, p in self.params.items()
        }

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = float(value)  # a np.float64 from a schedule would upcast float32 updates

    @classmethod
    def check_options(cls, **options) -> None:
        """ValueError naming the key for a value this optimizer cannot take: built with no
        parameters, so the config check runs it before any data is read or model is built."""
        options.pop("type", None)
        cls(**options, params={})

    def update(self, p, g, state: dict) -> None:
        """Update the array `p` in place from gradient `g`; `state` maps slot -> array like p."""
        raise NotImplementedError

    def observe(self, valid_loss: float) -> None:
        """Told each epoch's validation loss by the Trainer; only NT-ASGD acts on it."""

    @contextmanager
    def averaged(self):
        """Inside the block the Params hold the weights to evaluate; here, the trained ones."""
        yield

    def step(self) -> None:
        """One update of every parameter from its current `.grad` (weight decay included)."""
        self.step_count += 1
        for name, p in self.params.items():
            if p.sparse:
                self._step_rows(name, p)
            elif self.decoupled_decay:
                if self.weight_decay:
                    p.data *= 1.0 - self.lr * self.weight_decay
                self.update(p.data, p.grad, self.state[name])
            else:
                g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
                self.update(p.data, g, self.state[name])

    def _step_rows(self, name: str, p: Param) -> None:
        """Lazy update of a sparse Param: gather touched rows, update them, scatter back."""
        rows = p.touched_rows
        if len(rows) == 0:
            return
        w, g = p.data[rows], p.grad[rows]  # fancy indexing: copies, safe to modify
        state = {slot: array[rows] for slot, array in self.state[name].items()}
        if self.weight_decay and self.decoupled_decay:
            w *= 1.0 - self.lr * self.weight_decay
        elif self.weight_decay:
            g += self.weight_decay * w
        self.update(w, g, state)
        p.data[rows] = w  # rows are unique (Param.add_rows keeps a union), so no write clashes
        for slot, values in state.items():
            self.state[name][slot][rows] = values

    # -- checkpointing -------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Flat {"<param>/<slot>": array, "step_count": array, "lr": array}; NumPy copies, fit for .npz."""
        out = {f"{name}/{slot}": as_numpy(array).copy()
               for name, slots in self.state.items() for slot, array in slots.items()}
        out["step_count"] = np.asarray(self.step_count, dtype=np.int64)
        out["lr"] = np.asarray(self.lr, dtype=np.float64)
        return out

    def load_state_dict(self, d: dict) -> None:
        """Restore from `state_dict()` output; every key and shape must match this optimizer."""
        expected = self.state_dict()
        kind = getattr(self, "registered_name", type(self).__name__)
        where = f"the checkpoint's optimizer state (loading into '{kind}')"
        for key in d:
            if key not in expected:
                raise CheckpointError(
                    f"unexpected key '{key}' in {where}; the checkpoint was written for a "
                    f"different model or optimizer type: resume with the config it was trained with")
        for key, want in expected.items():
            if key not in d:
                raise CheckpointError(
                    f"key '{key}' is missing from {where}; the checkpoint was written for a "
                    f"different model or optimizer type: resume with the config it was trained with")
            got_shape = tuple(getattr(d[key], "shape", ()))
            if got_shape != want.shape:
                raise CheckpointError(
                    f"'{key}' has shape {got_shape} in {where} but this model needs {want.shape}; "
                    f"resume with the model config the checkpoint was trained with")
        for name, slots in self.state.items():
            for slot, array in slots.items():
                array[...] = get_xp(array).asarray(d[f"{name}/{slot}"], dtype=array.dtype)
        self.step_count = int(d["step_count"])
        self.lr = float(d["lr"])


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """Plain stochastic gradient descent: p ← p − lr·g."""

    def __init__(self, lr: float = 0.01, weight_decay: float = 0.0, *, params: dict[str, Param]):
        super().__init__(lr, weight_decay, params=params)

    def update(self, p, g, state):
        p -= self.lr * g


@OPTIMIZERS.register("momentum")
class Momentum(Optimizer):
    """Heavy-ball momentum (Polyak 1964), in the form PyTorch uses:

        v ← μ·v + g;   p ← p − lr·v

    The velocity `v` is a running sum of gradients, so a changed lr takes effect at once.
    """

    slots = ("velocity",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0,
                 *, params: dict[str, Param]):
        self.momentum = _require_unit_interval("momentum", momentum)
        super().__init__(lr, weight_decay, params=params)

    def update(self, p, g, state):
        v = state["velocity"]
        v *= self.momentum
        v += g
        p -= self.lr * v


@OPTIMIZERS.register("nesterov")
class Nesterov(Momentum):
    """Nesterov momentum in the look-ahead form of Sutskever et al. 2013 (as PyTorch):

        v ← μ·v + g;   p ← p − lr·(g + μ·v)

    Same keys and state as momentum; only the step looks ahead along v.
    """

    def update(self, p, g, state):
        v = state["velocity"]
        v *= self.momentum
        v += g
        p -= self.lr * (g + self.momentum * v)


@OPTIMIZERS.register("adagrad")
class AdaGrad(Optimizer):
    """AdaGrad (Duchi, Hazan & Singer 2011): per-coordinate steps shrink with the sum of g².

        h ← h + g²;   p ← p − lr·g / (√h + eps)
    """

    slots = ("sum_sq",)

    def __init__(self, lr: float = 0.01, eps: float = 1e-8, weight_decay: float = 0.0,
                 *, params: dict[str, Param]):
        self.eps = _require_positive("eps", eps)
        super().__init__(lr, weight_decay, params=params)

    def update(self, p, g, state):
        xp = get_xp(p)
        h = state["sum_sq"]
        h += g * g
        p -= self.lr * g / (xp.sqrt(h) + self.eps)


@OPTIMIZERS.register("rmsprop")
class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton 2012): AdaGrad with an exponential average of g².

        h ← ρ·h + (1 − ρ)·g²;   p ← p − lr·g / (√h + eps)
    """

    slots = ("mean_sq",)

    def __init__(self, lr: float = 0.001, rho: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, *, params: dict[str, Param]):
        self.rho = _require_unit_interval("rho", rho)
        self.eps = _require_positive("eps", eps)
        super().__init__(lr, weight_decay, params=params)

    def update(self, p, g, state):
        xp = get_xp(p)
        h = state["mean_sq"]
        h += (1 - self.rho) * (g * g - h)
        p -= self.lr * g / (xp.sqrt(h) + self.eps)


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1), t = step_count:

        m ← β1·m + (1 − β1)·g;   v ← β2·v + (1 − β2)·g²
        p ← p − lr·m̂ / (√v̂ + eps),   m̂ = m / (1 − β1^t),  v̂ = v / (1 − β2^t)

    computed in the paper's cheaper but identical order (end of its Section 2): fold the
    bias corrections into a scalar step size lr_t and an eps_t, so no m̂, v̂ arrays are made.
    """

    slots = ("m", "v")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0, *, params: dict[str, Param]):
        self.beta1 = _require_unit_interval("beta1", beta1)
        self.beta2 = _require_unit_interval("beta2", beta2)
        self.eps = _require_positive("eps", eps)
        super().__init__(lr, weight_decay, params=params)

    def update(self, p, g, state):
        xp, m, v, t = get_xp(p), state["m"], state["v"], self.step_count
        m += (1 - self.beta1) * (g - m)
        v += (1 - self.beta2) * (g * g - v)
        c1, c2 = 1 - self.beta1**t, 1 - self.beta2**t  # bias corrections
        lr_t, eps_t = self.lr * math.sqrt(c2) / c1, self.eps * math.sqrt(c2)
        p -= lr_t * m / (xp.sqrt(v) + eps_t)


@OPTIMIZERS.register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019, Algorithm 2), as PyTorch:

        p ← p − lr·weight_decay·p,   then the Adam step above on the gradient alone

    With Adam + L2 (`adam` with weight_decay) the decay is divided by √v̂ like the gradient,
    so weights with large gradients are hardly decayed; here every weight decays at the
    same rate. The decay is scaled by lr (PyTorch's convention), so a schedule scales it too.
    """

    decoupled_decay = True

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01, *, params: dict[str, Param]):
        super().__init__(lr, beta1, beta2, eps, weight_decay, params=params)


@OPTIMIZERS.register("ntasgd")
class NTASGD(SGD):
    """Non-monotonically triggered averaged SGD (Merity et al. 2017, Algorithm 1).

    Plain SGD (L2 weight decay as `sgd`) until the validation loss the Trainer reports
    (`observe`) is worse than the best one from more than `nonmono` evaluations ago; from
    then on, averaged SGD (Polyak & Juditsky 1992): the steps are SGD's, and every step
    also updates the mean of the iterates since the switch,

        average ← average + (p − average) / k,   k = steps since the switch (1, 2, ...)

    which is what the Trainer evaluates and saves as `best` (`averaged()`). The average,
    its count k and the trigger's record of validation losses are in `state_dict`, so a
    resumed run switches and averages exactly as an uninterrupted one.
    """

    slots = ("average",)

    def __init__(self, lr: float = 30.0, nonmono: int = 5, weight_decay: float = 0.0,
                 *, params: dict[str, Param]):
        if isinstance(nonmono, bool) or not isinstance(nonmono, int) or nonmono < 1:
            raise ValueError(f"nonmono must be an integer >= 1, got {nonmono}")
        self.nonmono = nonmono
        super().__init__(lr, weight_decay, params=params)
        self.average_count = 0  # k; 0 until the switch to averaging
        self.averaging = False
        self.recent = np.full(nonmono, np.inf)  # the last `nonmono` validation losses, oldest first
        self.observed = 0  # how many validation losses were observed
        self.older_best = math.inf  # the best of those before the last `nonmono`

    def observe(self, valid_loss: float) -> None:
        if not self.averaging and self.observed > self.nonmono and valid_loss > self.older_best:
            self.averaging = True
        if self.observed >= self.nonmono:  # the oldest recent loss becomes an older one
            self.older_best = min(self.older_best, float(self.recent[0]))
        self.recent = np.r_[self.recent[1:], float(valid_loss)]
        self.observed += 1

    def step(self) -> None:
        super().step()
        if not self.averaging:
            return
        self.average_count += 1
        for name, p in self.params.items():
            average = self.state[name]["average"]
            average += (p.data - average) * (1.0 / self.average_count)

    @contextmanager
    def averaged(self):
        if not self.average_count:
            yield
            return
        trained = {name: p.data.copy() for name, p in self.params.items()}
        for name, p in self.params.items():
            p.data[...] = self.state[name]["average"]
        try:
            yield
        finally:
            for name, p in self.params.items():
                p.data[...] = trained[name]

    def state_dict(self) -> dict:
        out = super().state_dict()
        out.update({"average_count": np.asarray(self.average_count, dtype=np.int64),
                    "averaging": np.asarray(self.averaging, dtype=np.int64),
                    "recent": self.recent.copy(), "observed": np.asarray(self.observed, dtype=np.int64),
                    "older_best": np.asarray(self.older_best, dtype=np.float64)})
        return out

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        self.average_count, self.averaging = int(d["average_count"]), bool(int(d["averaging"]))
        self.recent = np.asarray(d["recent"], dtype=np.float64).copy()
        self.observed, self.older_best = int(d["observed"]), float(d["older_best"])


# -- gradient utilities ---------------------------------------------------------------------
def _unique(params: Iterable[Param] | dict[str, Param]) -> list[Param]:
    """A list of distinct Params (a tied weight passed twice must be counted once)."""
    values = params.values() if isinstance(params, dict) else params
    out, seen = [], set()
    for p in values:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def _live_grad(p: Param):
    """The part of p.grad that can be nonzero: the touched rows of a sparse Param, else all."""
    return p.grad[p.touched_rows] if p.sparse else p.grad


def global_grad_norm(params: Iterable[Param] | dict[str, Param]) -> float:
    """√(Σ over all params of Σ g²): the L2 norm of all gradients seen as one vector."""
    total = 0.0
    for p in _unique(params):
        g = _live_grad(p).ravel()
        total += float(get_xp(g).vdot(g, g))
    return math.sqrt(total)


def grad_norms(named_params: dict[str, Param]) -> dict[str, float]:
    """{name: L2 norm of that parameter's gradient}; their root sum of squares is the global norm."""
    norms = {}
    for name, p in named_params.items():
        g = _live_grad(p).ravel()
        norms[name] = math.sqrt(float(get_xp(g).vdot(g, g)))
    return norms


def has_nonfinite(params: Iterable[Param] | dict[str, Param]) -> bool:
    """True if any gradient holds a NaN or an infinity (a diverged step; do not apply it)."""
    return any(not bool(get_xp(p.grad).isfinite(_live_grad(p)).all()) for p in _unique(params))


def clip_grad_norm(params: Iterable[Param] | dict[str, Param], max_norm: float,
                   norm: float | None = None) -> float:
    """Scale all gradients in place so that their global L2 norm is at most `max_norm`.

    Returns the norm BEFORE clipping, for logging. Gradient clipping as in Pascanu et al.
    2013 and Zaremba et al. 2014 (max norm 5 for LSTM LMs). A non-finite norm is returned
    as it is and the gradients are left untouched: scaling cannot repair them, and the
    caller should skip the step (see `has_nonfinite`). `norm`: global_grad_norm(params),
    when the caller has it already (saves a pass over every gradient).
    """
    max_norm = _require_positive("max_norm", max_norm)
    params = _unique(params)
    norm = global_grad_norm(params) if norm is None else norm
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)  # + 1e-6 keeps the result strictly below max_norm
        for p in params:
            if p.sparse:
                p.grad[p.touched_rows] *= scale
            else:
                p.grad *= scale
    return norm
