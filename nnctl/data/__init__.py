"""Every data-set module is imported here, so the DATASETS registry is complete."""

from nnctl.data.base import DATASETS, Dataset  # noqa: F401
from nnctl.data import images  # noqa: F401,E402
from nnctl.data import lm as _lm  # noqa: F401,E402  ptb, text
from nnctl.data import windows as _windows  # noqa: F401,E402
from nnctl.data import seq2seq as _seq2seq  # noqa: F401,E402  addition, dates, seq_pairs
