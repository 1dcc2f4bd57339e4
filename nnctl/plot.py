"""Pictures of runs: learning curves, a 2-D PCA of word vectors, and sparklines for the terminal.

matplotlib is an optional extra (`pip install "nnctl[plot]"`). It is imported only inside
the functions that draw, and through its object API with the Agg canvas (no pyplot, no
GUI backend, no global figure state), so importing this module never needs it.
Nothing here prints: the CLI (nnctl/cli/plot.py) decides what to show.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nnctl.errors import NnctlError, VocabError
from nnctl.metrics import MAIN_METRICS, METRICS, format_value
from nnctl.safe_files import atomic_write_bytes
from nnctl.runs import RunSummary

INSTALL_HINT = 'pip install "nnctl[plot]"'
FORMATS = ("png", "svg", "pdf")


class PlotError(NnctlError):
    """A picture cannot be drawn as asked (matplotlib missing, bad output name, too few words)."""

    exit_code = 2


class MatplotlibMissing(PlotError):
    exit_code = 1

    def __init__(self):
        super().__init__(f"matplotlib is not installed; {INSTALL_HINT} to draw images")


def _figure(width: int, height: int, dpi: int):
    """A matplotlib Figure of exactly width x height pixels, on the Agg (file-only) canvas."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MatplotlibMissing() from None
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _output_format(path: Path) -> str:
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise PlotError(f"{path}: unknown image type '.{fmt}'; end the file name with .png, .svg or .pdf")
    return fmt


def _save(fig, path: Path, dpi: int) -> None:
    # Render to memory first, then replace the file atomically: no half-written image on a crash.
    buffer = io.BytesIO()
    fig.savefig(buffer, format=_output_format(path), dpi=dpi)
    atomic_write_bytes(Path(path), buffer.getvalue())


# -- learning curves -------------------------------------------------------------------------

def epoch_positions(records: list[dict[str, Any]]) -> np.ndarray:
    """Where each record sits on an epoch axis.

    End-of-epoch records sit at their epoch; a mid-epoch validation (train.eval_every) sits at
    a fraction step / steps_per_epoch, where steps_per_epoch comes from the first train record.
    """
    first_train = next((r for r in records if r.get("split") == "train" and r.get("step")), None)
    steps_per_epoch = first_train["step"] / first_train["epoch"] if first_train else None
    if not steps_per_epoch:
        return np.array([float(r.get("epoch", 0)) for r in records])
    return np.array([r["step"] / steps_per_epoch if "step" in r else float(r.get("epoch", 0))
                     for r in records])


def curves(records: list[dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """split (train, valid) -> {"epoch": x, "loss": .., "accuracy"|"perplexity": .., "lr": ..}, NaN where absent.

    A resumed run may repeat a step: the later record wins, so every x appears once.
    """
    positions = epoch_positions(records)
    out = {}
    for split in ("train", "valid"):
        latest = {}  # (epoch, step) -> index of the record
        for i, rec in enumerate(records):
            if rec.get("split") == split:
                latest[(rec.get("epoch"), rec.get("step"))] = i
        chosen = sorted(latest.values(), key=lambda i: (records[i].get("step", 0), records[i].get("epoch", 0)))
        if not chosen:
            continue
        recs = [records[i] for i in chosen]
        x = positions[chosen]
        series = {"epoch": x}
        for key in ("loss", "perplexity", "accuracy", "lr"):
            if any(key in r for r in recs):
                series[key] = np.array([float(r[key]) if r.get(key) is not None else math.nan for r in recs])
        out[split] = series
    return out


METRIC_TITLES = {**{name: metric.title for name, metric in METRICS.items()}, "lr": "learning rate"}


def _is_percent(key: str) -> bool:
    return key in METRICS and METRICS[key].percent


def curve_panels(runs: Sequence[RunSummary]) -> list[str]:
    """The panels a set of runs needs: loss, each main metric they report, learning rate."""
    metrics = [m for m in MAIN_METRICS if any(r.metric == m for r in runs)]
    return ["loss", *metrics, "lr"]


def plot_curves(runs: Sequence[RunSummary], labels: Sequence[str], path: Path, *,
                width: int = 1500, height: int = 450, dpi: int = 100) -> None:
    """Loss, metric (train solid, valid dashed) and learning rate per epoch; one colour per run."""
    fig = _figure(width, height, dpi)
    panels = curve_panels(runs)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for i, (run, label) in enumerate(zip(runs, labels)):
        colour = f"C{i % 10}"
        series = curves(run.records)
        for ax, key in zip(axes, panels):
            for split, style in (("train", "-"), ("valid", "--")):
                s = series.get(split)
                if s is None or key not in s:
                    continue
                if key == "lr" and split == "valid" and "train" in series:
                    continue  # the rate is the same for both; draw it once
                few = len(s["epoch"]) <= 30  # markers make a short or one-point run visible
                ax.plot(s["epoch"], s[key], style, color=colour, marker="o" if few else None, markersize=3,
                        label=f"{label} ({split})" if key != "lr" else label)
    for ax, key in zip(axes, panels):
        _style_panel(ax, METRIC_TITLES[key] + (" (train —, valid --)" if key != "lr" else ""), key,
                     log_keys=("perplexity", "lr"))
    # One legend naming each run once (colour = run), under the last panel's lines.
    handles = [axes[-1].lines[j] for j in range(len(axes[-1].lines))]
    if handles:
        axes[-1].legend(handles=handles, fontsize=8, loc="best")
    fig.tight_layout()
    _save(fig, path, dpi)


def _style_panel(ax, title: str, key: str, log_keys: Sequence[str]) -> None:
    """A curve panel over epochs: title, grid, a percent axis for shares, a log axis for
    `log_keys` whose values span more than a factor of 30."""
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)
    if _is_percent(key):
        ax.yaxis.set_major_formatter(_percent_formatter())
    if key in log_keys and _spans_decades(ax):
        ax.set_yscale("log")


def _percent_formatter():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0)


def _spans_decades(ax) -> bool:
    values = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in ax.lines] or [np.zeros(0)])
    values = values[np.isfinite(values)]
    return values.size > 0 and values.min() > 0 and values.max() / values.min() > 30


# -- word vectors ------------------------------------------------------------------------------

def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, D) vectors onto their first two principal components.

    Centre the rows (X - mean), take the SVD X = U S V^T; the coordinates are X V[:, :2] = U S[:2].
    Each component's sign is fixed (its largest loading positive) so the picture does not flip
    between runs. Returns (coords (N, 2), explained variance ratio (2,)).
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise PlotError(f"need at least 2 word vectors to project, got {x.shape[0] if x.ndim == 2 else x.shape}")
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    vt = vt * np.where(signs == 0, 1, signs)[:, None]
    coords = x @ vt[:2].T
    if coords.shape[1] < 2:  # D == 1 or N == 2 with a single non-zero direction: pad with zeros
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    total = float((s ** 2).sum())
    explained = np.zeros(2)
    k = min(2, len(s))
    explained[:k] = (s[:k] ** 2) / total if total > 0 else 0.0
    return coords, explained


def select_word_vectors(vectors: np.ndarray, vocab, words: Sequence[str]) -> np.ndarray:
    """Rows of a (V, D) word-vector matrix for `words`; every unknown word is named in one VocabError."""
    unknown = [w for w in words if w not in vocab]
    if unknown:
        listed = ", ".join(repr(w) for w in unknown)
        raise VocabError(f"not in the vocabulary ({len(vocab):,} words): {listed}; check the spelling and case")
    ids = np.array([vocab.index[w] for w in words], dtype=np.int64)
    return np.asarray(vectors)[ids]


def plot_word_vectors(words: Sequence[str], coords: np.ndarray, explained: np.ndarray, path: Path, *,
                      title: str = "", width: int = 900, height: int = 900, dpi: int = 100) -> None:
    """A labelled scatter of 2-D word coordinates (from pca_2d)."""
    fig = _figure(width, height, dpi)
    ax = fig.subplots()
    ax.scatter(coords[:, 0], coords[:, 1], s=14, color="C0")
    for word, (x, y) in zip(words, coords):
        ax.annotate(word, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=9)
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f}% of variance)")
    ax.set_title(title or f"{len(words)} word vectors, PCA", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.margins(0.12)  # room for the labels of the outermost words
    fig.tight_layout()
    _save(fig, path, dpi)


# -- terminal ----------------------------------------------------------------------------------

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """Values as a row of block characters, lowest ▁ to highest █; at most `width` characters.

    A longer series is sampled at evenly spaced points (first and last kept); NaN is a space.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return ""
    if v.size > width:
        v = v[np.linspace(0, v.size - 1, width).round().astype(int)]
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return " " * v.size
    low, high = finite.min(), finite.max()
    if high == low:
        levels = np.full(v.size, len(BLOCKS) // 2 - 1)
    else:
        levels = np.floor((v - low) / (high - low) * (len(BLOCKS) - 1) + 0.5)
    return "".join(BLOCKS[int(level)] if np.isfinite(x) else " " for x, level in zip(v, np.nan_to_num(levels)))


# -- gradients: norms over training, and through time --------------------------------------

@dataclass
class GradNorms:
    """The "grads" records of a run (train.log_grad_norms): gradient norms before clipping."""

    steps: np.ndarray
    per_param: dict[str, np.ndarray]
    total: np.ndarray
    clip: float | None


def grad_norms(records: list[dict[str, Any]]) -> GradNorms | None:
    """The gradient norms a run logged, in step order (a resumed run's repeats: the later wins); None if none."""
    latest = {}
    for rec in records:
        if rec.get("split") == "grads" and isinstance(rec.get("grad_norms"), dict) and "step" in rec:
            latest[rec["step"]] = rec
    if not latest:
        return None
    recs = [latest[step] for step in sorted(latest)]
    names = list(dict.fromkeys(name for rec in recs for name in rec["grad_norms"]))
    per_param = {name: np.array([float(rec["grad_norms"].get(name, math.nan)) for rec in recs]) for name in names}
    return GradNorms(np.array([float(rec["step"]) for rec in recs]), per_param,
                     np.array([float(rec.get("grad_norm", math.nan)) for rec in recs]), recs[-1].get("clip_grad_norm"))


def plot_grad_norms(norms: Sequence[GradNorms], labels: Sequence[str], path: Path, *,
                    width: int = 1500, height: int = 450, dpi: int = 100) -> None:
    """One panel per run: each parameter's gradient norm over the steps (log scale), the
    global norm in black and the clipping threshold dashed, so explosions and what clipping
    cuts off are visible."""
    fig = _figure(width, height, dpi)
    axes = fig.subplots(1, len(norms), squeeze=False, sharey=True)[0]
    for ax, run, label in zip(axes, norms, labels):
        for i, (name, values) in enumerate(run.per_param.items()):
            ax.plot(run.steps, values, color=f"C{i % 10}", linewidth=1, label=name)
        ax.plot(run.steps, run.total, color="black", linewidth=2, label="global norm")
        if run.clip is not None:
            ax.axhline(run.clip, color="red", linestyle="--", linewidth=1, label=f"clip_grad_norm {run.clip:g}")
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("gradient norms before clipping", fontsize=10)
    fig.tight_layout()
    _save(fig, path, dpi)


def plot_gradient_flow(flows, labels: Sequence[str], path: Path, *,
                       width: int = 1500, height: int = 500, dpi: int = 100) -> None:
    """||dL_T / dh_t|| against t (log scale): one panel per layer depth, one colour per model."""
    depth = max(len(flow.layers) for flow in flows)
    fig = _figure(width, height, dpi)
    axes = fig.subplots(1, depth, squeeze=False, sharey=True)[0]
    for i, (flow, label) in enumerate(zip(flows, labels)):
        for ax, layer in zip(axes, flow.layers):
            t = np.arange(1, len(layer.norms) + 1)
            ax.plot(t, layer.norms, color=f"C{i % 10}", marker="o" if len(t) <= 40 else None, markersize=2,
                    label=label)
    for d, ax in enumerate(axes):
        ax.set_yscale("log")
        ax.set_xlabel("time step t (the loss is the last step's, t = T)")
        ax.set_title(f"gradient reaching h_t in layer {d}", fontsize=10)
        ax.grid(True, alpha=0.3, which="both")
    axes[0].set_ylabel("||dL_T / dh_t||")
    axes[-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    _save(fig, path, dpi)


# -- sweeps: one curve per setting, the mean over its seeds with a band -------------------------

def mean_curve(runs: Sequence[RunSummary], split: str, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(x, mean, std) of `key` on `split` over runs, at the points every run reached; None if none has it."""
    series = [s[split] for s in (curves(r.records) for r in runs) if split in s and key in s[split]]
    if not series:
        return None
    length = min(len(s["epoch"]) for s in series)
    values = np.stack([s[key][:length] for s in series])
    return series[0]["epoch"][:length], values.mean(axis=0), values.std(axis=0)


def plot_sweep(results: Sequence[Any], path: Path, *, target: float | None = None, width: int = 1200,
               height: int = 450, dpi: int = 100) -> None:
    """Train loss and validation metric per epoch: one colour per setting, its mean over seeds,
    and a band of ± one standard deviation (sweep.SettingResult gives each setting's runs).

    target: a line at that validation value, each setting's mean steps to reach it in the
    legend, and the ratio of the slowest setting's steps to the fastest's in the title."""
    fig = _figure(width, height, dpi)
    metric = next((r.metric for r in results if r.runs), "loss")
    panels = [("train", "loss"), ("valid", metric)]
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    mean_steps = {}
    for result in results if target is not None else ():
        reached = [s for s in result.steps_to(target) if s is not None]
        if len(reached) == len(result.runs):  # every seed got there
            mean_steps[result.label] = float(np.mean(reached))
    for i, result in enumerate(results):
        colour = f"C{i % 10}"
        label = f"{result.label} (n={len(result.runs)})"
        if target is not None:
            steps = mean_steps.get(result.label)
            label += f", {steps:,.0f} steps to target" if steps is not None else ", target not reached"
        for ax, (split, key) in zip(axes, panels):
            curve = mean_curve(result.runs, split, key)
            if curve is None:
                continue
            x, mean, std = curve
            ax.plot(x, mean, color=colour, marker="o" if len(x) <= 30 else None, markersize=3, label=label)
            if len(result.runs) > 1:
                ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
    for ax, (split, key) in zip(axes, panels):
        _style_panel(ax, f"{split} {METRIC_TITLES.get(key, key)} (mean ± std over seeds)", key,
                     log_keys=("perplexity", "loss"))
    if target is not None:
        axes[-1].axhline(target, color="grey", linestyle=":", linewidth=1)
        if len(mean_steps) >= 2:
            fastest, slowest = min(mean_steps.values()), max(mean_steps.values())
            fig.suptitle(f"steps to valid {metric} {format_value(metric, target)}: the slowest setting needs "
                         f"{slowest / fastest:.1f}x the fastest's", fontsize=11)
    if axes[-1].lines:
        axes[-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    _save(fig, path, dpi)
