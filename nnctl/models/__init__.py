"""Every model module is imported here, so the MODELS registry is complete."""

from nnctl.models.base import MODELS, LossOutput, Model  # noqa: F401
from nnctl.models import cnn, mlp  # noqa: F401,E402
from nnctl.models import lstm_lm as _lstm_lm  # noqa: F401,E402  lstm_lm
from nnctl.models import cbow as _cbow  # noqa: F401,E402
from nnctl.models import ppmi_svd as _ppmi_svd  # noqa: F401,E402
from nnctl.models import seq2seq as _seq2seq  # noqa: F401,E402
