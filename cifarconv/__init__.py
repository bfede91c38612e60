"""cifarconv: 2-D convolution from scratch with im2col, behind one ``nn.Conv2d``-compatible API.

    import cifarconv
    y = cifarconv.conv2d(x, w, b, stride=1, padding=1, backend="custom")
    model = cifarconv.convert(model, backend="custom")

Bring your own backend with `register_backend`, and check it with
`cifarconv.testing.check_backend`.
"""

from .functional import conv2d, fold, unfold
from .module import Conv2d, convert
from .registry import (
    AUTO,
    BACKENDS,
    PluginError,
    available_backends,
    describe_backend,
    load_plugin,
    names,
    register_backend,
    unregister_backend,
)

__version__ = "0.1.0"

__all__ = [
    "AUTO", "BACKENDS", "Conv2d", "PluginError", "available_backends", "conv2d", "convert", "describe_backend", "fold",
    "load_plugin", "names", "register_backend", "unfold", "unregister_backend",
]  # fmt: skip
