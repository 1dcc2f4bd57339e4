"""`nnctl plot / compare / plot-vectors`, the terminal fallback, and the training display's output modes.

PNGs are checked by their header alone (signature, IHDR width and height) plus their pixel
data (IDAT, inflated with zlib) not being one flat colour: no image library needed.
"""

from __future__ import annotations

import io
import re
import struct
import sys
import zlib

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from nnctl import checkpoint
from nnctl.cli import app
from nnctl.console import RichListener, make_listener
from nnctl.data.text import Vocab
from nnctl.layers.base import Param
from nnctl.models.base import MODELS, Model
from nnctl.plot import curves, epoch_positions, pca_2d, sparkline
from nnctl.runs import differing_keys, resolve_run, summarise_run

runner = CliRunner(env={"COLUMNS": "200"})
ANSI = re.compile(r"\x1b\[")


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kwargs)


def png_size_and_pixels(path) -> tuple[int, int, bytes]:
    """(width, height, inflated pixel bytes) of a PNG; fails the test if the file is not one."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):  # walk the chunks: length, type, body, CRC
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def assert_drawn_png(path, width, height):
    w, h, pixels = png_size_and_pixels(path)
    assert (w, h) == (width, height)
    # A blank canvas inflates to almost one byte value; lines, text and axes give many.
    assert len(set(pixels)) > 20, "the image looks empty"


@pytest.fixture
def two_runs(toy_config, tmp_path):
    runs = tmp_path / "runs"
    assert invoke("train", toy_config, "--runs-dir", runs, "--quiet").exit_code == 0
    result = invoke("train", toy_config, "--runs-dir", runs, "--quiet",
                    "--set", "optimizer.lr=0.05", "--set", "name=toy_slow", "--set", "train.epochs=4")
    assert result.exit_code == 0, result.output
    return runs / "toy", runs / "toy_slow"


# -- plot ----------------------------------------------------------------------------------

def test_plot_writes_a_png_of_the_requested_size(two_runs, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "figs" / "curves.png"
    result = invoke("plot", *two_runs, "-o", out, "--size", "800x300")
    assert result.exit_code == 0, result.output
    assert_drawn_png(out, 800, 300)
    assert "wrote" in result.output and "2 runs" in result.output


def test_plot_svg_and_bad_extension(two_runs, tmp_path):
    pytest.importorskip("matplotlib")
    assert invoke("plot", two_runs[0], "-o", tmp_path / "c.svg").exit_code == 0
    assert (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")
    result = runner.invoke(app, ["plot", str(two_runs[0]), "-o", str(tmp_path / "c.jpeg")])
    assert result.exit_code == 2 and "unknown image type '.jpeg'" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_plot_without_matplotlib_draws_sparklines_in_the_terminal(two_runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    out = tmp_path / "curves.png"
    result = invoke("plot", *two_runs, "-o", out)
    assert result.exit_code == 0, result.output
    assert not out.exists()
    assert 'pip install "nnctl[plot]"' in result.output
    for label in ("toy/", "toy_slow/"):
        assert label in result.output
    rows = [line for line in result.output.splitlines() if " loss " in line]
    assert len(rows) == 4  # train and valid loss for each run
    # The slow run's loss falls over its 4 epochs: its sparkline ends on the lowest block.
    slow_train = next(r for r in rows if "toy_slow/" in r and "train" in r)
    spark = re.search(f"[{''.join('▁▂▃▄▅▆▇█')}]{{4}}", slow_train).group(0)
    assert spark[0] == "█" and spark[-1] == "▁"


def test_plot_of_a_missing_run_is_one_line(tmp_path):
    result = runner.invoke(app, ["plot", str(tmp_path / "nope")])
    assert result.exit_code == 4 and "no such run folder" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_size_is_one_line(two_runs):
    result = runner.invoke(app, ["plot", str(two_runs[0]), "--size", "big"])
    assert result.exit_code == 2 and "WIDTHxHEIGHT" in result.output


def test_run_name_folder_means_its_latest_run(two_runs):
    latest = resolve_run(two_runs[0])
    assert latest.parent == two_runs[0] and (latest / "config.yaml").is_file()


# -- library pieces ---------------------------------------------------------------------------

def test_curves_put_mid_epoch_evaluations_between_epochs():
    records = [
        {"epoch": 1, "step": 5, "split": "valid", "loss": 2.0, "lr": 0.1},
        {"epoch": 1, "step": 10, "split": "train", "loss": 1.5, "lr": 0.1},
        {"epoch": 1, "step": 10, "split": "valid", "loss": 1.4, "lr": 0.1},
        {"epoch": 2, "step": 20, "split": "train", "loss": 1.0, "lr": 0.05},
        {"epoch": 2, "step": 20, "split": "train", "loss": 0.9, "lr": 0.05},  # repeated after a resume
        {"epoch": 3, "step": 20, "split": "test", "loss": 1.1, "lr": 0.05},
    ]
    assert epoch_positions(records).tolist() == [0.5, 1.0, 1.0, 2.0, 2.0, 2.0]
    c = curves(records)
    assert set(c) == {"train", "valid"}
    assert c["valid"]["epoch"].tolist() == [0.5, 1.0]
    assert c["train"]["loss"].tolist() == [1.5, 0.9]  # the later record of a step wins
    assert c["train"]["lr"].tolist() == [0.1, 0.05]


def test_sparkline_orders_blocks_and_respects_width():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    falling = sparkline([3, 2, 1])
    assert falling[0] == "█" and falling[-1] == "▁" and "▁" < falling[1] < "█"
    assert len(sparkline(np.arange(100.0), width=20)) == 20
    assert sparkline([1.0, float("nan"), 2.0]) == "▁ █"
    assert len(set(sparkline([5, 5, 5]))) == 1


def test_pca_recovers_a_plane_hidden_in_higher_dimensions():
    rng = np.random.default_rng(0)
    plane = rng.standard_normal((12, 2)) * [3.0, 1.0]
    basis, _ = np.linalg.qr(rng.standard_normal((6, 2)))  # an orthonormal 2-D subspace of R^6
    coords, explained = pca_2d(plane @ basis.T + 5.0)
    centred = plane - plane.mean(0)
    # A rotation/reflection of the plane: every pairwise distance is kept.
    dist = lambda p: np.linalg.norm(p[:, None] - p[None], axis=-1)
    np.testing.assert_allclose(dist(coords), dist(centred), atol=1e-9)
    assert explained.sum() == pytest.approx(1.0) and explained[0] > explained[1]
    # The sign convention ties the axes to the loadings, not to what the SVD happens to return:
    # mirrored data gives the mirrored picture.
    mirrored, _ = pca_2d(-(plane @ basis.T))
    np.testing.assert_allclose(mirrored, -pca_2d(plane @ basis.T)[0], atol=1e-9)


def test_differing_keys_lists_changed_and_missing_keys():
    a = {"name": "x", "optimizer": {"type": "sgd", "lr": 0.1}, "train": {"epochs": 3}}
    b = {"name": "x", "optimizer": {"type": "sgd", "lr": 0.01}, "train": {"epochs": 3, "clip_grad_norm": 1.0}}
    assert differing_keys([a, b]) == [("optimizer.lr", [0.1, 0.01]), ("train.clip_grad_norm", [None, 1.0])]


# -- compare ------------------------------------------------------------------------------------

def test_compare_shows_differing_keys_and_metrics_side_by_side(two_runs):
    result = invoke("compare", *two_runs)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    lr_row = next(line for line in lines if "optimizer.lr" in line)
    assert "0.5" in lr_row and "0.05" in lr_row
    epochs_row = next(line for line in lines if "train.epochs" in line)
    assert "3" in epochs_row and "4" in epochs_row
    assert not any(" seed " in line for line in lines)  # the same in both: not shown
    for a, b in zip(two_runs, (summarise_run(resolve_run(p)) for p in two_runs)):
        assert f"{100 * b.test:.2f}%" in result.output
    assert any("best valid metric" in line for line in lines)


def test_compare_needs_two_runs(two_runs):
    result = runner.invoke(app, ["compare", str(two_runs[0])])
    assert result.exit_code == 2 and "at least two" in result.output


# -- plot-vectors -------------------------------------------------------------------------------

@MODELS.register("test_fake_word_vectors")
class FakeWordVectors(Model):
    """Just an embedding matrix: the contract plot-vectors relies on is `word_vectors() -> (V, D)`."""

    def __init__(self, dim: int = 5, *, vocab_size, rng, dtype=np.float32):
        self.W = Param.init(rng.standard_normal((vocab_size, dim)), dtype)

    def word_vectors(self) -> np.ndarray:
        return self.W.data


WORDS = ["king", "queen", "man", "woman", "paris", "france", "the", "a"]


@pytest.fixture
def vectors_checkpoint(tmp_path):
    vocab = Vocab(WORDS, list(range(len(WORDS), 0, -1)))
    model = FakeWordVectors(vocab_size=len(vocab), rng=np.random.default_rng(1))
    path = tmp_path / "w2v" / "checkpoints" / "best.npz"
    meta = {"config": {"model": {"type": "test_fake_word_vectors", "dim": 5}},
            "model_extras": {"vocab_size": len(vocab)}}
    checkpoint.save(path, model, meta, vocab=vocab)
    return path.parent.parent


def test_plot_vectors_writes_a_labelled_png(vectors_checkpoint, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "words.png"
    result = invoke("plot-vectors", vectors_checkpoint, "--words", "king", "queen", "man", "woman",
                    "-o", out, "--size", "400x300")
    assert result.exit_code == 0, result.output
    assert "4 words" in result.output
    assert_drawn_png(out, 400, 300)


def test_plot_vectors_without_matplotlib_prints_the_coordinates(vectors_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = invoke("plot-vectors", vectors_checkpoint, "--words", "king,queen,paris", "-o", tmp_path / "w.png")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "w.png").exists() and 'pip install "nnctl[plot]"' in result.output
    # The printed coordinates are the PCA of exactly those three rows.
    ckpt = checkpoint.load(vectors_checkpoint / "checkpoints" / "best.npz")
    rows = ckpt.arrays["model/W"][[0, 1, 4]]
    expected, _ = pca_2d(rows)
    for word, (x, y) in zip(("king", "queen", "paris"), expected):
        line = next(line for line in result.output.splitlines() if f" {word} " in line)
        assert f"{x:+.3f}" in line and f"{y:+.3f}" in line


def test_plot_vectors_names_every_unknown_word(vectors_checkpoint):
    result = runner.invoke(app, ["plot-vectors", str(vectors_checkpoint), "--words", "king", "kign", "qeen"])
    assert result.exit_code == 5, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and "'kign'" in message and "'qeen'" in message


def test_plot_vectors_refuses_a_run_without_word_vectors(two_runs):
    result = runner.invoke(app, ["plot-vectors", str(two_runs[0]), "--words", "a", "b"])
    assert result.exit_code != 0
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and "has no word vectors" in message


# -- the training display -----------------------------------------------------------------------

def test_plain_output_when_not_a_terminal_has_no_control_codes(toy_config, tmp_path):
    result = invoke("train", toy_config, "--runs-dir", tmp_path / "runs")  # CliRunner's stdout is no tty
    assert result.exit_code == 0, result.output
    assert not ANSI.search(result.output) and "\r" not in result.output
    assert "lr" in result.output and "points/s" in result.output
    assert "best valid accuracy" in result.output  # from the second epoch's step lines on


def test_quiet_prints_only_the_summary_line(toy_config, tmp_path):
    result = invoke("train", toy_config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("done: 3 epochs") and "test accuracy" in lines[0]
    log = next((tmp_path / "runs").glob("*/*/train.log")).read_text()
    assert "epoch 1" in log  # quiet on screen, complete in the log


def drive(listener):
    """The calls a Trainer makes for one short epoch, with a best validation value already known."""
    listener.on_fit_start({"params": 15, "epochs": 2, "steps_per_epoch": 3, "unit": "points", "run": None})
    listener.on_record({"epoch": 1, "step": 3, "split": "valid", "loss": 0.3, "accuracy": 0.9, "lr": 0.5})
    listener.on_epoch_start(1, 3)
    for batch in (1, 2, 3):
        listener.on_step({"epoch": 1, "batch": batch, "steps_per_epoch": 3, "step": 3 + batch, "loss": 0.25,
                          "lr": 0.125, "throughput": 4321.0, "best": 0.9})
    listener.on_fit_end({"epochs": 2, "steps": 6, "elapsed": 0.1, "metric": "accuracy", "best_valid": 0.9,
                         "best_epoch": 1})


def test_live_display_shows_throughput_lr_and_best_and_honours_no_color(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    screen = io.StringIO()
    monkeypatch.setattr("nnctl.console.console",
                        lambda: Console(file=screen, force_terminal=True, width=160, highlight=False))
    listener = make_listener(interactive=True)
    assert isinstance(listener, RichListener)
    drive(listener)
    text = screen.getvalue()
    assert "lr 0.125" in text and "4,321 points/s" in text and "best valid accuracy 90.00%" in text
    colours = re.findall(r"\x1b\[[0-9;]*m", text)
    assert not [c for c in colours if re.search(r"\[(3|4|9|10)[0-9]", c)], colours  # no colour codes


def test_make_listener_picks_plain_lines_off_a_terminal_and_quiet_mode():
    assert type(make_listener(interactive=False)).__name__ == "PlainListener"
    quiet = make_listener(quiet=True, interactive=True)
    assert type(quiet).__name__ == "PlainListener" and not quiet.echo
