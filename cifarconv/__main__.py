"""``python -m cifarconv``: which backends run here, and a check of each against torch.

For every backend usable on the chosen device it runs one ResNet-style conv layer
forward and backward, prints the largest difference from torch's own conv for the
output and each gradient (relative to the largest reference value), and the median forward+backward time after a warm-up.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from . import __version__, available_backends, conv2d
from .registry import BACKENDS, unavailable_reason


def forward_backward(backend, x, w, b, grad):
    x, w, b = (t.detach().requires_grad_() for t in (x, w, b))
    y = conv2d(x, w, b, padding=1, backend=backend)
    return (y, *torch.autograd.grad(y, (x, w, b), grad))


def median_ms(fn, device, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cifarconv", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=32, help="input height and width")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    print(f"cifarconv {__version__} | torch {torch.__version__} | Python {platform.python_version()} | {device}")
    for name in BACKENDS:
        reason = unavailable_reason(name, device)
        print(f"  {name:7s} {'available' if reason is None else 'unavailable: ' + reason}")

    c, n, s = args.channels, args.batch_size, args.size
    g = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=g).to(device) for shape in ((n, c, s, s), (c, c, 3, 3), (c,)))
    grad = torch.randn(n, c, s, s, generator=g).to(device)
    print(f"\nconv {c}->{c} 3x3 pad 1 on {n}x{c}x{s}x{s} float32, forward + backward:")
    print(f"  {'backend':7s} {'err y':>9s} {'err dx':>9s} {'err dW':>9s} {'err db':>9s} {'median ms':>10s}")
    reference = forward_backward("torch", x, w, b, grad)
    for name in available_backends(device):
        outputs = forward_backward(name, x, w, b, grad)
        errors = [((got - want).abs().max() / want.abs().max()).item() for got, want in zip(outputs, reference)]
        ms = median_ms(lambda: forward_backward(name, x, w, b, grad), device, args.repeats)
        print(f"  {name:7s} " + " ".join(f"{e:9.1e}" for e in errors) + f" {ms:10.2f}")


if __name__ == "__main__":
    main()
