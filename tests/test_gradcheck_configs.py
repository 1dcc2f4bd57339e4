"""`nnctl gradcheck` passes on every shipped config whose model learns by gradient."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from nnctl.cli import app

CONFIGS = sorted(Path(__file__).parent.parent.glob("configs/*.yaml"))
GRADIENT_TRAINED = [p for p in CONFIGS if yaml.safe_load(p.read_text())["model"]["type"] != "ppmi_svd"]


def test_every_model_type_is_covered():
    types = {yaml.safe_load(p.read_text())["model"]["type"] for p in GRADIENT_TRAINED}
    assert types == {"mlp", "cnn", "lstm_lm", "cbow", "seq2seq"}


@pytest.mark.parametrize("config", GRADIENT_TRAINED, ids=[p.stem for p in GRADIENT_TRAINED])
def test_gradcheck_command_passes_on_shipped_config(config):
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["gradcheck", str(config), "--max-elements", "40"])
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output and "pass" in result.output
