// The geometry of one im2col / col2im call, in plain integers, and the index math on it,
// shared by the C++ and CUDA kernels.  This header includes nothing from torch, so nvcc
// alone compiles it, and every function in it runs on the host and on the device.
//
// Index math, stated once for every kernel:
//
//   The image is (N, C, H, W) with arbitrary element strides img_*, in groups of Cg
//   channels.  Its column matrix holds, for every image n, channel c, kernel tap (i, j)
//   and output pixel l = oy * OW + ox, the padded-image pixel that tap sees:
//
//       iy = oy * SH - PH + i * DH,   ix = ox * SW - PW + j * DW           (tap_y, tap_x)
//       cols[n * col_n + k * col_k + l * col_l] = image[n, c, iy, ix]     (0 outside it)
//
//   OH = (H + 2 PH - DH (KH - 1) - 1) / SH + 1, likewise OW.  Two layouts number the
//   columns' k (column_k):
//
//     * channel-major, k = (c * KH + i) * KW + j: F.unfold's layout.  One matrix row per
//       (c, i, j), with l along it (col_l = 1).  ext_im2col returns it as (N, K, L)
//       (col_n = K * L, col_k = L); the conv on NCHW tensors lays a chunk of B images
//       side by side, (K, B * L) (col_n = L, col_k = B * L), so that one GEMM
//       W (C_out x K) @ cols serves B images and y lands as (C_out, B * L).
//     * pixel-major, k = ((g * KH + i) * KW + j) * Cg + (c - g * Cg) for c in group g:
//       one matrix row per output pixel, its taps in (g, i, j) order, each tap's Cg
//       channels next to each other (col_k = 1).  The conv on NHWC tensors uses it for a
//       chunk of B images, (B * L, K) (col_n = L * K, col_l = K): a tap is one run of Cg
//       channels in both the image and the row, and y = cols @ W'^T (W' the weight with
//       its taps ordered the same way) lands in NHWC as it is.
//
//   col2im is the adjoint: image[n, c, y, x] = sum of every column entry that im2col
//   copied from (n, c, y, x).  In gather form each image pixel sums its own taps: tap
//   row i reads pixel row y from output row oy exactly when y + PH - i * DH = oy * SH
//   for an integer 0 <= oy < OH (source_output), and likewise for x.
//
//   Geometry<int64_t> is what the host fills in.  Kernels run on Geometry<int32_t>, with
//   Divisor<int32_t> for their divisions, unless index64 is set: the host sets it when
//   some offset does not fit 32 bits (fits_int32).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define CIFARCONV_HD __host__ __device__ __forceinline__
#else
#define CIFARCONV_HD inline
#endif

namespace cifarconv {

enum class ColumnLayout : int32_t { kChannelMajor = 0, kPixelMajor = 1 };

template <typename I>
struct Geometry {
  I n, c, h, w;              // image sizes
  I cg;                      // channels per group (the pixel-major layout orders a row (g, i, j, c))
  I kh, kw;                  // kernel size
  I sh, sw, ph, pw, dh, dw;  // stride, padding, dilation
  I oh, ow;                  // output size
  I img_n, img_c, img_h, img_w;  // image strides, in elements
  I col_n, col_k, col_l;         // column strides, in elements
  ColumnLayout layout;
  bool index64;  // run the kernels on Geometry<int64_t>: set when !fits_int32 (or forced, for tests)

  template <typename J>
  Geometry<J> as() const {
    return {J(n),  J(c),  J(h),  J(w),  J(cg), J(kh), J(kw), J(sh), J(sw), J(ph), J(pw), J(dh), J(dw),
            J(oh), J(ow), J(img_n), J(img_c), J(img_h), J(img_w), J(col_n), J(col_k), J(col_l), layout, index64};
  }
};
using ColumnGeometry = Geometry<int64_t>;

// The input row / column that kernel tap i / j sees at output row oy / column ox.
template <typename I>
CIFARCONV_HD I tap_y(const Geometry<I>& g, I oy, I i) { return oy * g.sh - g.ph + i * g.dh; }
template <typename I>
CIFARCONV_HD I tap_x(const Geometry<I>& g, I ox, I j) { return ox * g.sw - g.pw + j * g.dw; }

// The column index k of channel c (in group grp), tap (i, j), in the geometry's layout.
template <typename I>
CIFARCONV_HD I column_k(const Geometry<I>& g, I grp, I c, I i, I j) {
  if (g.layout == ColumnLayout::kChannelMajor) return (c * g.kh + i) * g.kw + j;
  return ((grp * g.kh + i) * g.kw + j) * g.cg + (c - grp * g.cg);
}

template <typename I>
CIFARCONV_HD I column_offset(const Geometry<I>& g, I n, I k, I l) { return n * g.col_n + k * g.col_k + l * g.col_l; }
template <typename I>
CIFARCONV_HD I image_offset(const Geometry<I>& g, I n, I c, I y, I x) {
  return n * g.img_n + c * g.img_c + y * g.img_h + x * g.img_w;
}

// Division by a divisor fixed for a whole kernel.  Divisor<int64_t> divides;
// Divisor<int32_t> multiplies and shifts instead, for operands 0 <= n < 2^31 and
// 1 <= d < 2^31: with l = ceil(log2 d) and m = floor(2^32 (2^l - d) / d) + 1,
//     n / d = (t + ((n - t) >> min(l, 1))) >> max(l - 1, 0),   t = (m * n) >> 32
// (Granlund and Montgomery, "Division by invariant integers using multiplication", 1994).
// Divisors are set up on the host; divmod runs anywhere.
template <typename I>
struct Divisor;

template <>
struct Divisor<int64_t> {
  int64_t d = 1;
  Divisor() = default;
  explicit Divisor(int64_t divisor) : d(divisor) {}
  CIFARCONV_HD void divmod(int64_t n, int64_t* q, int64_t* r) const {
    *q = n / d;
    *r = n - *q * d;
  }
};

template <>
struct Divisor<int32_t> {
  uint32_t d = 1, m = 1, shift1 = 0, shift2 = 0;
  Divisor() = default;
  explicit Divisor(int64_t divisor) : d(static_cast<uint32_t>(divisor)) {
    uint32_t l = 0;
    while ((uint64_t(1) << l) < d) ++l;
    m = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << l) - d)) / d + 1);
    shift1 = l < 1 ? l : 1;
    shift2 = l > 1 ? l - 1 : 0;
  }
  CIFARCONV_HD void divmod(int32_t n, int32_t* q, int32_t* r) const {
    const uint32_t u = static_cast<uint32_t>(n);
#if defined(__CUDA_ARCH__)
    const uint32_t t = __umulhi(m, u);
#else
    const uint32_t t = static_cast<uint32_t>((uint64_t(m) * u) >> 32);
#endif
    const uint32_t quotient = (t + ((u - t) >> shift1)) >> shift2;
    *q = static_cast<int32_t>(quotient);
    *r = static_cast<int32_t>(u - quotient * d);
  }
};

// col2im: the output position o (a row or a column) whose tap reads input position
// t + o * stride, given t = input + padding - tap * dilation; false when there is none.
template <typename I>
CIFARCONV_HD bool source_output(I t, const Divisor<I>& stride, I out, I* o) {
  if (t < 0) return false;
  I rem;
  stride.divmod(t, o, &rem);
  return rem == 0 && *o < out;
}

// col2im's gather: calls fn(i, j, oy, ox) for every tap (i, j) whose output pixel
// (oy, ox) read image pixel (y, x), in (i, j) order, so sums over them are deterministic.
template <typename I, typename Fn>
CIFARCONV_HD void for_each_reading_tap(const Geometry<I>& g, const Divisor<I>& stride_y, const Divisor<I>& stride_x,
                                       I y, I x, const Fn& fn) {
  for (I i = 0; i < g.kh; ++i) {
    const I ty = y + g.ph - i * g.dh;
    if (ty < 0) break;  // ty only falls as i grows
    I oy;
    if (!source_output(ty, stride_y, g.oh, &oy)) continue;
    for (I j = 0; j < g.kw; ++j) {
      const I tx = x + g.pw - j * g.dw;
      if (tx < 0) break;
      I ox;
      if (source_output(tx, stride_x, g.ow, &ox)) fn(i, j, oy, ox);
    }
  }
}

// The first and one-past-last output column ox whose tap at input column
// x0 + ox * stride lies inside [0, width): the others read padding.
template <typename I>
CIFARCONV_HD void valid_range(I x0, I stride, I width, I out, I* lo, I* hi) {
  const I first = x0 >= 0 ? 0 : (-x0 + stride - 1) / stride;
  const I last = x0 >= width ? 0 : (width - x0 + stride - 1) / stride;  // ceil((width - x0) / stride)
  *lo = first < out ? first : out;
  *hi = last < out ? last : out;
  if (*hi < *lo) *hi = *lo;
}

// True when every element offset into the image and the columns, every flat index over
// either (with room for one more grid-stride step of up to 2^25 threads), and every
// intermediate of the index math is below 2^31: kernels may then run on Geometry<int32_t>.
inline bool fits_int32(const ColumnGeometry& g) {
  const int64_t limit = (int64_t(1) << 31) - (int64_t(1) << 25);
  const int64_t taps = g.kh * g.kw, pixels = g.oh * g.ow;
  const int64_t image_last = (g.n - 1) * g.img_n + (g.c - 1) * g.img_c + (g.h - 1) * g.img_h + (g.w - 1) * g.img_w;
  const int64_t col_last = (g.n - 1) * g.col_n + (g.c * taps - 1) * g.col_k + (pixels - 1) * g.col_l;
  const int64_t image_count = g.n * g.c * g.h * g.w, col_count = g.n * g.c * taps * pixels;
  // tap_y / tap_x and the col2im offsets y + PH - i * DH stay within these
  const int64_t reach = (g.oh + g.h) * g.sh + g.ph + g.kh * g.dh + (g.ow + g.w) * g.sw + g.pw + g.kw * g.dw;
  return image_last < limit && col_last < limit && image_count < limit && col_count < limit && reach < limit;
}

}  // namespace cifarconv
