"""Triton kernels of the ``triton`` backend: implicit-GEMM convolution and im2col / col2im.

One file per job:

* `common`        -- configs, TF32 choice, the launch helper and the shared ``mma`` step;
* `conv_fwd`      -- y = conv2d(x, w) + b;
* `conv_dgrad`    -- dx from dy and w, one stride phase per program;
* `conv_wgrad`    -- dw (and db in the same pass) from dy and x, split-K over pixels;
* `im2col_col2im` -- im2col and col2im (gather form, no atomics).

Each file holds a kernel and the host function that allocates its output and launches it.
None of these modules may be imported without triton installed; `cifarconv.backends.triton`
imports them only after ``import triton`` succeeded.
"""
