// The geometry of one im2col / col2im call, in plain integers, shared by the C++ and
// CUDA kernels (this header includes nothing from torch, so nvcc alone compiles it).
//
// Index math, stated once for every kernel:
//
//   The image is (N, C, H, W) with arbitrary element strides img_*.  Its column matrix
//   has, for image n, one row per (channel, kernel tap) and one column per output pixel:
//
//       row    k = (c * KH + i) * KW + j        (c < C, i < KH, j < KW)
//       column l = oy * OW + ox                 (oy < OH, ox < OW)
//
//   and holds the padded-image pixel that kernel tap (i, j) sees at output (oy, ox):
//
//       iy = oy * SH - PH + i * DH,   ix = ox * SW - PW + j * DW
//       cols[n * col_n + k * col_k + l] = image[n, c, iy, ix]  (0 outside the image)
//
//   OH = (H + 2 PH - DH (KH - 1) - 1) / SH + 1, likewise OW.
//
//   Two column layouts are used, chosen by (col_n, col_k); a column index l is always
//   contiguous:
//     * per image, as torch's unfold returns it:  (N, K, L)    col_n = K * L,  col_k = L
//     * a chunk of B images side by side, the right-hand GEMM operand of the conv:
//                                                 (K, B * L)   col_n = L,      col_k = B * L
//
//   col2im is the adjoint: image[n, c, y, x] = sum of every column entry that im2col
//   copied from (n, c, y, x).  Entry (i, j, oy, ox) reads pixel y exactly when
//   y + PH - i * DH = oy * SH for an integer 0 <= oy < OH (and likewise for x).
#pragma once

#include <cstdint>

namespace cifarconv {

struct ColumnGeometry {
  int64_t n, c, h, w;              // image sizes
  int64_t kh, kw;                  // kernel size
  int64_t sh, sw, ph, pw, dh, dw;  // stride, padding, dilation
  int64_t oh, ow;                  // output size
  int64_t img_n, img_c, img_h, img_w;  // image strides, in elements
  int64_t col_n, col_k;                // column strides, in elements (col_l is 1)
};

// The first and one-past-last output column ox whose tap at input column
// x0 + ox * stride lies inside [0, width): the others read padding.
inline void valid_range(int64_t x0, int64_t stride, int64_t width, int64_t out, int64_t* lo, int64_t* hi) {
  const int64_t first = x0 >= 0 ? 0 : (-x0 + stride - 1) / stride;
  const int64_t last = x0 >= width ? 0 : (width - x0 + stride - 1) / stride;  // ceil((width - x0) / stride)
  *lo = first < out ? first : out;
  *hi = last < out ? last : out;
  if (*hi < *lo) *hi = *lo;
}

}  // namespace cifarconv
