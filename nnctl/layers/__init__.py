"""Every layer nnctl provides, importable as `from nnctl.layers import Linear, Conv2d, ...`."""

from nnctl.layers.base import Layer, Param, Sequential  # noqa: F401
from nnctl.layers.conv import Conv2d, MaxPool2d  # noqa: F401
from nnctl.layers.dense import Dropout, Flatten, Linear, ReLU, Sigmoid, Tanh  # noqa: F401
from nnctl.layers.init import initial_weights  # noqa: F401
from nnctl.layers.losses import SoftmaxCrossEntropy  # noqa: F401
from nnctl.layers.norm import BatchNorm  # noqa: F401
