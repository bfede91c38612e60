"""cifarconv: 2-D convolution from scratch with im2col, behind one ``nn.Conv2d``-compatible API.

    import cifarconv
    y = cifarconv.conv2d(x, w, b, stride=1, padding=1, backend="custom")
    model = cifarconv.convert(model, backend="custom")
"""

from .functional import conv2d, fold, unfold
from .module import Conv2d, convert
from .registry import AUTO, BACKENDS, NAMES, available_backends

__version__ = "0.1.0"

__all__ = ["AUTO", "BACKENDS", "NAMES", "Conv2d", "available_backends", "conv2d", "convert", "fold", "unfold"]
