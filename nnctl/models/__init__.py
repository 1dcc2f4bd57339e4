"""Every model module is imported here, so the MODELS registry is complete."""

from nnctl.models.base import MODELS, LossOutput, Model  # noqa: F401
from nnctl.models import cnn, mlp  # noqa: F401,E402
