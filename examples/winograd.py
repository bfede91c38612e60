"""A Winograd F(2x2, 3x3) convolution as a cifarconv backend, in plain torch.

    python -m cifarconv.check --plugin examples/winograd.py winograd

Each 2x2 block of the output comes from a 4x4 tile of the (padded) input, with 16
multiplications per tile and channel pair instead of 36 (Lavin and Gray, 2015):

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, summed over input channels)

g is a 3x3 filter, d a 4x4 input tile, and the elementwise product summed over channels
is 16 GEMMs, one per position (i, j) of the 4x4 transformed tile.  Only the forward is
Winograd: 3x3 kernels with stride 1 and dilation 1 (any padding, any groups).  Every other
geometry, and the backward, run the custom backend's im2col code, and say so.
"""

import warnings

import torch

import cifarconv
from cifarconv.backends import custom

# F(2x2, 3x3): input tile 4x4, filter 3x3, output tile 2x2
B_T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
G = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
A_T = [[1, 1, 1, 0], [0, 1, -1, -1]]
_told = set()


def fallback(x, w, bias, stride, padding, dilation, groups):
    geometry = (tuple(w.shape[-2:]), tuple(stride), tuple(dilation))
    if geometry not in _told:
        _told.add(geometry)
        warnings.warn(f"winograd: kernel {geometry[0]}, stride {geometry[1]}, dilation {geometry[2]} is not "
                      "3x3 / 1 / 1: it runs the custom backend's im2col code", stacklevel=3)
    return custom.conv2d(x, w, bias, stride, padding, dilation, groups)


@cifarconv.register_backend("winograd", devices=("cpu", "cuda"))
def conv2d(x, w, bias, stride, padding, dilation, groups):
    if tuple(w.shape[-2:]) != (3, 3) or tuple(stride) != (1, 1) or tuple(dilation) != (1, 1):
        return fallback(x, w, bias, stride, padding, dilation, groups)
    n, c_in, h, wd = x.shape
    c_out, g = w.shape[0], groups
    k, c = c_out // g, c_in // g  # output and input channels per group
    oh, ow = h + 2 * padding[0] - 2, wd + 2 * padding[1] - 2
    th, tw = (oh + 1) // 2, (ow + 1) // 2  # 2x2 output tiles per image, the last ones may overhang

    # The input, zero-padded to cover every tile: tile (ti, tj) reads rows 2ti..2ti+3, cols 2tj..2tj+3.
    xp = x.new_zeros(n, c_in, 2 * th + 2, 2 * tw + 2)
    xp[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + wd] = x
    sn, sc, sh, sw = xp.stride()
    tiles = xp.as_strided((n, c_in, th, tw, 4, 4), (sn, sc, 2 * sh, 2 * sw, sh, sw))

    b_t, g_m, a_t = (torch.tensor(m, dtype=x.dtype, device=x.device) for m in (B_T, G, A_T))
    v = b_t @ tiles @ b_t.T  # (n, c_in, th, tw, 4, 4): B^T d B per tile
    u = g_m @ w @ g_m.T  # (c_out, c, 4, 4): G g G^T per filter
    # 16 GEMMs, one per tile position: (g, k, c) @ (g, c, n th tw) -> (g, k, n th tw)
    v = v.reshape(n, g, c, th * tw, 16).permute(4, 1, 2, 0, 3).reshape(16, g, c, n * th * tw)
    u = u.reshape(g, k, c, 16).permute(3, 0, 1, 2)
    m = (u @ v).reshape(4, 4, g, k, n, th, tw).permute(4, 2, 3, 5, 6, 0, 1)  # (n, g, k, th, tw, 4, 4)
    y = a_t @ m @ a_t.T  # (n, g, k, th, tw, 2, 2): A^T M A
    y = y.permute(0, 1, 2, 3, 5, 4, 6).reshape(n, c_out, 2 * th, 2 * tw)[:, :, :oh, :ow]
    return y + bias.view(1, -1, 1, 1) if bias is not None else y
