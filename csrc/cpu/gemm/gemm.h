// cifarconv's own CPU GEMM for convolution: what one instruction-set path offers, in
// plain C++ (no ATen), so that each path's translation unit can be compiled for its ISA
// and nothing from torch is compiled with AVX-512 by accident.
//
// How the GEMM works (gemm_driver.inc has the loops, kernel_*.cpp the micro-kernels,
// docs/cpu-gemm.md the whole story) -- Goto and van de Geijn's design, as BLIS teaches it:
//
//   C (m x n) += A (m x k) B (k x n) is cut into MR x NR tiles of C.  A micro-kernel keeps
//   one tile in vector registers and, for every k, broadcasts MR values of A and multiplies
//   them with one NR-wide row of B (broadcast + FMA).  A and B are first *packed*: copied
//   into small contiguous panels in exactly the order the micro-kernel reads them.  Packing
//   is where convolution enters: a convolution is a GEMM whose B (or A) is the im2col
//   matrix, and the packer reads that matrix straight from the image -- a kernel tap is
//   an offset, padding is a zero -- so the full column matrix never exists.
//
// Packed formats (kcp = the k block's length rounded up to KU, the zeros read as 0):
//   A micro-panel, MR rows:   [kcp / KU][MR][KU]   -- KU k's of one row are contiguous,
//                                                     so a row of the source that is
//                                                     contiguous in k packs with vector copies
//   B micro-panel, NR columns: [kcp][NR]           -- one NR-wide vector per k
#pragma once

#include <cstdint>

namespace cifarconv {
namespace cpu_gemm {

// A matrix given by offset tables: element (r, k) is data[row_off[r] + k_off[k]].  run_k[k]
// is how many k' >= k continue contiguously (k_off[k'] = k_off[k] + k' - k), run_row likewise
// for rows; packers copy such runs as vectors.  Weights (any strides, any tap order) and
// dy as grad weight's A are DenseOperands.
struct DenseOperand {
  const float* data;
  const int64_t* row_off;
  const int64_t* k_off;
  const int64_t* run_row;
  const int64_t* run_k;
};

// An image read as an implicit im2col matrix.  One index runs over output pixels
// p = (n * grid_h + a) * grid_w + b; the other over k = (c, th, tw) ("channel-major", for
// NCHW) or (th, tw, c) ("pixel-major", for NHWC).  Pixel (a, b) with tap (th, tw) reads
//     image[n, c, a * step_h + origin_h + tap_h[th], b * step_w + origin_w + tap_w[tw]]
// and 0 where that is outside the h x w image (the padding).  The forward pass sets
// step = stride, origin = -padding, tap_h[i] = i * dilation.  Grad input reads dy with one
// stride phase's taps (see conv_gemm_cpu.cpp).  ones_column: k == taps * channels reads 1
// (grad weight's bias column).
struct ImageOperand {
  const float* data;  // the group's first channel
  int64_t stride_n, stride_c, stride_h, stride_w;
  int64_t h, w;
  int64_t grid_h, grid_w;
  int64_t step_h, step_w, origin_h, origin_w;
  int64_t channels;
  int64_t taps_h, taps_w;
  const int64_t* tap_h;
  const int64_t* tap_w;
  int64_t reach_h[2], reach_w[2];  // the least and the greatest of tap_h, of tap_w
  bool pixel_major;  // k = (th, tw, c); else (c, th, tw)
  bool ones_column;
};

// Where C goes: C(r, j) is data[row_off[r] + col_off[j]].  A tile whose rows are equally
// spaced and whose columns are contiguous is stored by the micro-kernel itself; any other
// (edges, image boundaries, stride phases) goes through a small buffer.  bias (or null) is
// added to every row r (bias_on_rows) or column j, once.
struct TileStore {
  float* data;
  const int64_t* row_off;
  const int64_t* col_off;
  const float* bias;
  bool bias_on_rows;
};

// Cache blocking, in elements: a k block of KC (a multiple of KU), row blocks of MC (a
// multiple of MR_PIXELS) and column blocks of NC (a multiple of NR).  See select.cpp.
struct Blocking {
  int64_t kc, mc, nc;
};

// Floats of per-thread workspace a driver call needs (one packed A block and one B block).
inline int64_t workspace_floats(const Blocking& b) { return b.mc * b.kc + b.kc * b.nc + 64; }

// One instruction-set path: its register tile and its drivers.  Every driver computes a
// range of C's rows or columns; the caller splits the range between threads.
struct Kernels {
  const char* name;
  int mr, mr_pixels, nr, ku;  // the tile: MR rows of channels, MR_PIXELS rows of pixels, NR columns

  // Packs A = op rows [0, m) x k [0, k) into MR-row micro-panels, block by KC block,
  // panels [panel_begin, panel_end) of each block: the layout gemm_* read as packed_a.
  void (*pack_a)(const DenseOperand& op, int64_t m, int64_t k, const Blocking& blk, int64_t panel_begin,
                 int64_t panel_end, float* packed);
  // The same for B = op rows as columns: B(k, j) = op(j, k), NR-column micro-panels.
  void (*pack_b)(const DenseOperand& op, int64_t n, int64_t k, const Blocking& blk, int64_t panel_begin,
                 int64_t panel_end, float* packed);

  // C (m x pixels) = packed weights (m x k) @ image columns, for the weight's MR-row
  // micro-panels [panel_begin, panel_end) and pixels [p_begin, p_end): NCHW, the pixels are
  // the vector direction.
  void (*gemm_pixel_columns)(const float* packed_a, const ImageOperand& b, const TileStore& c, int64_t m,
                             int64_t k, int64_t panel_begin, int64_t panel_end, int64_t p_begin, int64_t p_end,
                             const Blocking& blk, float* workspace);
  // C (pixels x n) = image rows @ packed weights (k x n), for pixels [p_begin, p_end) and the
  // weight's NR-column micro-panels [panel_begin, panel_end): NHWC, the channels are the
  // vector direction.
  void (*gemm_pixel_rows)(const ImageOperand& a, const float* packed_b, const TileStore& c, int64_t n, int64_t k,
                          int64_t panel_begin, int64_t panel_end, int64_t p_begin, int64_t p_end,
                          const Blocking& blk, float* workspace);
  // C (m x [n_begin, n_end)) = sum over pixels [p_begin, p_end) of A (m x pixels) @ image
  // taps (pixels x n): grad weight, the pixels are the sum.  C is overwritten.
  void (*gemm_sum_pixels)(const DenseOperand& a, const ImageOperand& b, const TileStore& c, int64_t m,
                          int64_t n_begin, int64_t n_end, int64_t p_begin, int64_t p_end, const Blocking& blk,
                          float* workspace);

  // The FMA peak micro-benchmark: `iters` rounds of independent register-only FMAs on
  // this path's vectors; returns the floating-point operations done (2 per lane per FMA).
  double (*fma_loop)(int64_t iters);
};

// The paths compiled into this build (null where the ISA is not x86 or the compiler lacks it).
extern const Kernels kGeneric;
#if defined(__x86_64__) || defined(_M_X64)
extern const Kernels kAvx2;
extern const Kernels kAvx512;
#endif

}  // namespace cpu_gemm
}  // namespace cifarconv
