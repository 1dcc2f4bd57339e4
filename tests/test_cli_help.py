"""Every --help shows its placeholders: the CLI renders help as markdown, where a bare
`<name>` reads as an HTML tag and vanishes ("runs//sweeps//"), so they must sit in backticks."""

import re

import typer.main
from typer.testing import CliRunner

from nnctl.cli import app

runner = CliRunner()


def commands():
    group = typer.main.get_command(app)
    return {name: group.get_command(None, name) for name in group.list_commands(None)}


def test_every_placeholder_in_a_help_text_is_shown():
    checked = 0
    for name, command in commands().items():
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        placeholders = {m for text in texts for m in re.findall(r"<[a-z_]+>", text)} - {"<unk>", "<eos>", "<pad>"}
        if not placeholders:
            continue
        result = runner.invoke(app, [name, "--help"], terminal_width=200)
        assert result.exit_code == 0, result.output
        shown = set(re.findall(r"<[a-z_]+>", result.output))
        assert placeholders <= shown, f"nnctl {name} --help loses {sorted(placeholders - shown)}"
        checked += 1
    assert checked >= 5  # eval, generate, plot, compare, sweep, export ... name runs/<name>
