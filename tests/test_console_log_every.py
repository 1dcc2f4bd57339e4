"""`train.log_every` sets the spacing of the plain progress lines (piped, not a terminal)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from nnctl.cli import app

BATCH_LINE = re.compile(r"^epoch (\d+) batch (\d+)/(\d+) ")


@pytest.mark.parametrize("every, expected", [(2, [2, 4, 6]), (4, [4, 6])])
def test_batch_lines_come_every_log_every_batches(toy_config, tmp_path, every, expected):
    """toy_blobs: 96 points in batches of 16, so 6 steps an epoch; the last batch is always shown."""
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["train", str(toy_config), "--runs-dir", str(tmp_path / "runs"),
              "--set", f"train.log_every={every}", "--set", "train.epochs=2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    shown = [tuple(map(int, m.groups())) for m in map(BATCH_LINE.match, result.output.splitlines()) if m]
    assert shown == [(epoch, batch, 6) for epoch in (1, 2) for batch in expected], result.output
    (log,) = (tmp_path / "runs").glob("toy/*/train.log")
    logged = [m.group(0) for m in map(BATCH_LINE.match, log.read_text().splitlines()) if m]
    assert len(logged) == len(shown)  # train.log has the same lines as the console
