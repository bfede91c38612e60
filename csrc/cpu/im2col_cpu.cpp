// im2col and col2im on CPU, for both column layouts of column_geometry.h, where the index
// math is stated once and shared with the CUDA kernels (including the 32-bit path and its
// Divisor, which the CPU runs too, so CPU tests check the math the GPU runs).  Parallel
// over rows with at::parallel_for, inner loops over contiguous memory that vectorize.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../column_geometry.h"
#include "../im2col.h"
#include "conv_gemm_cpu.h"

namespace cifarconv {
namespace {

// Rows per parallel task: enough work that threads are not started for a handful of copies.
int64_t grain(int64_t work_per_row) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_row));
}

// ---------------------------------------------------------------- channel-major

// One task per column-matrix row (n, c, i, j): it fills that row's OH * OW entries,
// one output row oy at a time: zeros for the taps in the padding, a strided copy
// (a plain contiguous copy when SW == 1 and the image rows are contiguous) for the rest.
template <typename T, typename I>
void im2col_channel_major(const T* img, T* cols, const Geometry<I>& g) {
  const Divisor<I> by_kw(g.kw), by_kh(g.kh), by_c(g.c);
  at::parallel_for(0, int64_t(g.n) * g.c * g.kh * g.kw, grain(g.oh * g.ow), [&](int64_t begin, int64_t end) {
    for (I r = I(begin); r < I(end); ++r) {
      I rest, n, c, i, j;  // r = ((n * C + c) * KH + i) * KW + j
      by_kw.divmod(r, &rest, &j);
      by_kh.divmod(rest, &rest, &i);
      by_c.divmod(rest, &n, &c);
      T* row = cols + column_offset(g, n, column_k(g, I(0), c, i, j), I(0));
      const I x0 = tap_x(g, I(0), j);  // input column seen at ox = 0
      I lo, hi;
      valid_range(x0, g.sw, g.w, g.ow, &lo, &hi);
      for (I oy = 0; oy < g.oh; ++oy, row += g.ow) {
        const I iy = tap_y(g, oy, i);
        if (iy < 0 || iy >= g.h) {
          std::fill(row, row + g.ow, T(0));
          continue;
        }
        const T* src = img + image_offset(g, n, c, iy, I(0));
        std::fill(row, row + lo, T(0));
        if (g.sw == 1 && g.img_w == 1) {  // a contiguous run: kept apart so that it vectorizes
          for (I ox = lo; ox < hi; ++ox) row[ox] = src[x0 + ox];
        } else {
          for (I ox = lo; ox < hi; ++ox) row[ox] = src[(x0 + ox * g.sw) * g.img_w];
        }
        std::fill(row + hi, row + g.ow, T(0));
      }
    }
  });
}

// One task per image row (n, c, y), in gather form: the task sums every column entry
// that reads that row into an accumulator (float for half types) and writes the row
// once, so the result does not depend on the thread count and needs no atomics.
template <typename T, typename I>
void col2im_channel_major(const T* cols, T* img, const Geometry<I>& g) {
  using acc_t = at::opmath_type<T>;
  const Divisor<I> by_h(g.h), by_c(g.c), stride_y(g.sh);
  at::parallel_for(0, int64_t(g.n) * g.c * g.h, grain(g.w * g.kh * g.kw), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(g.w);
    for (I r = I(begin); r < I(end); ++r) {
      I nc, n, c, y;  // r = (n * C + c) * H + y
      by_h.divmod(r, &nc, &y);
      by_c.divmod(nc, &n, &c);
      std::fill(acc.begin(), acc.end(), acc_t(0));
      for (I i = 0; i < g.kh; ++i) {
        const I t = y + g.ph - i * g.dh;  // = oy * SH for the output rows reading y
        if (t < 0) break;                 // t only falls as i grows
        I oy;
        if (!source_output(t, stride_y, g.oh, &oy)) continue;
        for (I j = 0; j < g.kw; ++j) {
          const T* src = cols + column_offset(g, n, column_k(g, I(0), c, i, j), oy * g.ow);
          const I x0 = tap_x(g, I(0), j);
          I lo, hi;
          valid_range(x0, g.sw, g.w, g.ow, &lo, &hi);
          acc_t* dst = acc.data();
          if (g.sw == 1) {  // the common case, kept apart so that it vectorizes
            for (I ox = lo; ox < hi; ++ox) dst[x0 + ox] += static_cast<acc_t>(src[ox]);
          } else {
            for (I ox = lo; ox < hi; ++ox) dst[x0 + ox * g.sw] += static_cast<acc_t>(src[ox]);
          }
        }
      }
      T* out = img + image_offset(g, n, c, y, I(0));
      for (I x = 0; x < g.w; ++x) out[x * g.img_w] = static_cast<T>(acc[x]);
    }
  });
}

// ---------------------------------------------------------------- pixel-major

// One task per output row (n, oy): it fills the rows of its OW pixels one after the
// other, each tap a run of Cg channels (zeros for a tap in the padding).
template <typename T, typename I>
void im2col_pixel_major(const T* img, T* cols, const Geometry<I>& g) {
  const I groups = g.c / g.cg;
  const Divisor<I> by_oh(g.oh);
  at::parallel_for(0, int64_t(g.n) * g.oh, grain(g.ow * g.c * g.kh * g.kw), [&](int64_t begin, int64_t end) {
    for (I r = I(begin); r < I(end); ++r) {
      I n, oy;  // r = n * OH + oy
      by_oh.divmod(r, &n, &oy);
      for (I ox = 0; ox < g.ow; ++ox) {
        T* row = cols + column_offset(g, n, I(0), oy * g.ow + ox);
        for (I grp = 0; grp < groups; ++grp) {
          const I c0 = grp * g.cg;
          for (I i = 0; i < g.kh; ++i) {
            const I iy = tap_y(g, oy, i);
            for (I j = 0; j < g.kw; ++j) {
              const I ix = tap_x(g, ox, j);
              T* dst = row + column_k(g, grp, c0, i, j);
              if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) {
                std::fill(dst, dst + g.cg, T(0));
                continue;
              }
              const T* src = img + image_offset(g, n, c0, iy, ix);
              if (g.img_c == 1) {  // channels contiguous: a plain copy
                std::copy(src, src + g.cg, dst);
              } else {
                for (I c = 0; c < g.cg; ++c) dst[c] = src[c * g.img_c];
              }
            }
          }
        }
      }
    }
  });
}

// One task per image row (n, y), in gather form: each pixel sums, for every tap that read
// it, that tap's run of channels in the reading output pixel's row (in float for half
// types), in a fixed order, and is written once.
template <typename T, typename I>
void col2im_pixel_major(const T* cols, T* img, const Geometry<I>& g) {
  using acc_t = at::opmath_type<T>;
  const I groups = g.c / g.cg;
  const Divisor<I> by_h(g.h), stride_y(g.sh), stride_x(g.sw);
  at::parallel_for(0, int64_t(g.n) * g.h, grain(g.w * g.c * g.kh * g.kw), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(g.c);
    for (I r = I(begin); r < I(end); ++r) {
      I n, y;  // r = n * H + y
      by_h.divmod(r, &n, &y);
      for (I x = 0; x < g.w; ++x) {
        std::fill(acc.begin(), acc.end(), acc_t(0));
        for_each_reading_tap(g, stride_y, stride_x, y, x, [&](I i, I j, I oy, I ox) {
          const T* row = cols + column_offset(g, n, I(0), oy * g.ow + ox);
          for (I grp = 0; grp < groups; ++grp) {
            const I c0 = grp * g.cg;
            const T* src = row + column_k(g, grp, c0, i, j);
            acc_t* dst = acc.data() + c0;
            for (I c = 0; c < g.cg; ++c) dst[c] += static_cast<acc_t>(src[c]);
          }
        });
        T* out = img + image_offset(g, n, I(0), y, x);
        for (I c = 0; c < g.c; ++c) out[c * g.img_c] = static_cast<T>(acc[c]);
      }
    }
  });
}

// The kernel for the geometry's layout, with 32- or 64-bit index math as it says.
template <typename T>
void im2col_kernel(const T* img, T* cols, const ColumnGeometry& g) {
  const bool channel_major = g.layout == ColumnLayout::kChannelMajor;
  if (g.index64) {
    channel_major ? im2col_channel_major(img, cols, g) : im2col_pixel_major(img, cols, g);
  } else {
    const Geometry<int32_t> g32 = g.as<int32_t>();
    channel_major ? im2col_channel_major(img, cols, g32) : im2col_pixel_major(img, cols, g32);
  }
}

template <typename T>
void col2im_kernel(const T* cols, T* img, const ColumnGeometry& g) {
  const bool channel_major = g.layout == ColumnLayout::kChannelMajor;
  if (g.index64) {
    channel_major ? col2im_channel_major(cols, img, g) : col2im_pixel_major(cols, img, g);
  } else {
    const Geometry<int32_t> g32 = g.as<int32_t>();
    channel_major ? col2im_channel_major(cols, img, g32) : col2im_pixel_major(cols, img, g32);
  }
}

void im2col_cpu(const at::Tensor& image, at::Tensor& cols, const ColumnGeometry& g) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, image.scalar_type(), "cifarconv_im2col_cpu", [&] {
    im2col_kernel(image.const_data_ptr<scalar_t>(), cols.mutable_data_ptr<scalar_t>(), g);
  });
}

void col2im_cpu(const at::Tensor& cols, at::Tensor& image, const ColumnGeometry& g) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, cols.scalar_type(), "cifarconv_col2im_cpu", [&] {
    col2im_kernel(cols.const_data_ptr<scalar_t>(), image.mutable_data_ptr<scalar_t>(), g);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(cifarconv, CPU, m) {
  register_conv_ops(m, c10::DeviceType::CPU,
                    {im2col_cpu, col2im_cpu, conv_forward_cpu, conv_grad_input_cpu, conv_grad_weight_cpu});
}

}  // namespace cifarconv
