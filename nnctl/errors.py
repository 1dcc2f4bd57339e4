"""The errors nnctl reports to a person: each one is a single line that names the problem and the fix.

`cli` turns any `NnctlError` into that one line and the error's `exit_code`; nothing
below the CLI prints or exits by itself.
"""


class NnctlError(Exception):
    """A mistake a user can fix. The message is one line: what is wrong, and what to do."""

    exit_code = 1


class ConfigError(NnctlError):
    """A config file or override is malformed, names an unknown key, or holds an impossible value."""

    exit_code = 2


class DataError(NnctlError):
    """A data file is missing, unreadable, or not in the expected format."""

    exit_code = 3


class CheckpointError(NnctlError):
    """A checkpoint or run directory cannot be read, or does not fit the model asked of it."""

    exit_code = 4


class VocabError(NnctlError):
    """A word is not in the vocabulary, or a vocabulary does not fit a checkpoint."""

    exit_code = 5
