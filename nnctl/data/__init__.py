"""Every data-set module is imported here, so the DATASETS registry is complete."""

from nnctl.data.base import DATASETS, Dataset  # noqa: F401
from nnctl.data import images  # noqa: F401,E402
