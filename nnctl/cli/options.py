"""Help texts of options that several commands share, so each reads the same everywhere."""

SET_HELP = "Override a config key, e.g. `--set optimizer.lr=0.01` (repeatable; the value is parsed as YAML)."
DATA_DIR_HELP = "Folder holding the data sets (default: $NNCTL_DATA, else ~/.cache/nnctl)."
