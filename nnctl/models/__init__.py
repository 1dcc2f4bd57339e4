"""Every model module is imported here, so the MODELS registry is complete."""

from nnctl.models.base import MODELS, LossOutput, Model  # noqa: F401
from nnctl.models import cbow as _cbow  # noqa: F401,E402
from nnctl.models import ppmi_svd as _ppmi_svd  # noqa: F401,E402
