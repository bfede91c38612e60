"""What a conv layer costs and how fast a device could run it, for the applications on top.

- `layer`: `ConvLayer`, one layer's tensors, its three GEMMs, their FLOPs and the bytes
  each pass moves with explicit im2col and with implicit GEMM.
- `extract`: `layers_of(model, input)`, the conv layers a model runs (forward hooks).
- `roofline`: the device's measured peak compute and bandwidth, and the time floor they set.
- `timing`: median (or fastest) times of callables on CPU and CUDA.

The benchmarks (``benchmarks/``) and the explainer (``cifarconv.explain``) share these
figures.  The library (ops, backends, module, functional) never imports this package,
and this package imports no application: callers pass their own models.
"""
