// im2col and col2im on CPU: both parallel over rows with at::parallel_for, with inner
// loops over contiguous memory that the compiler vectorizes.  The index math is stated
// once in column_geometry.h.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../column_geometry.h"
#include "../columns.h"

namespace cifarconv {
namespace {

// Rows per parallel task: enough work that threads are not started for a handful of copies.
int64_t grain(int64_t work_per_row) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_row));
}

// One task per column-matrix row (n, c, i, j): it fills that row's OH * OW entries,
// one output row oy at a time: zeros for the taps in the padding, a strided copy
// (a plain contiguous copy when SW == 1 and the image rows are contiguous) for the rest.
template <typename T>
void im2col_kernel(const T* img, T* cols, const ColumnGeometry& g) {
  const int64_t taps = g.kh * g.kw;
  at::parallel_for(0, g.n * g.c * taps, grain(g.oh * g.ow), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t j = r % g.kw, i = r / g.kw % g.kh, c = r / taps % g.c, n = r / (taps * g.c);
      const int64_t k = (c * g.kh + i) * g.kw + j;
      T* row = cols + n * g.col_n + k * g.col_k;
      const T* plane = img + n * g.img_n + c * g.img_c;
      const int64_t x0 = j * g.dw - g.pw;  // input column seen at ox = 0
      int64_t lo, hi;
      valid_range(x0, g.sw, g.w, g.ow, &lo, &hi);
      for (int64_t oy = 0; oy < g.oh; ++oy, row += g.ow) {
        const int64_t iy = oy * g.sh - g.ph + i * g.dh;
        if (iy < 0 || iy >= g.h) {
          std::fill(row, row + g.ow, T(0));
          continue;
        }
        const T* src = plane + iy * g.img_h;
        std::fill(row, row + lo, T(0));
        if (g.sw == 1 && g.img_w == 1) {  // a contiguous run: kept apart so that it vectorizes
          for (int64_t ox = lo; ox < hi; ++ox) row[ox] = src[x0 + ox];
        } else {
          for (int64_t ox = lo; ox < hi; ++ox) row[ox] = src[(x0 + ox * g.sw) * g.img_w];
        }
        std::fill(row + hi, row + g.ow, T(0));
      }
    }
  });
}

// One task per image row (n, c, y), in gather form: the task sums every column entry
// that reads that row into an accumulator (float for half types) and writes the row
// once, so the result does not depend on the thread count and needs no atomics.
template <typename T>
void col2im_kernel(const T* cols, T* img, const ColumnGeometry& g) {
  using acc_t = at::opmath_type<T>;
  at::parallel_for(0, g.n * g.c * g.h, grain(g.w * g.kh * g.kw), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(g.w);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t y = r % g.h, c = r / g.h % g.c, n = r / (g.h * g.c);
      std::fill(acc.begin(), acc.end(), acc_t(0));
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t t = y + g.ph - i * g.dh;  // = oy * SH for the output rows reading y
        if (t < 0) break;                       // t only falls as i grows
        if (t % g.sh != 0 || t / g.sh >= g.oh) continue;
        const int64_t oy = t / g.sh;
        for (int64_t j = 0; j < g.kw; ++j) {
          const int64_t k = (c * g.kh + i) * g.kw + j;
          const T* src = cols + n * g.col_n + k * g.col_k + oy * g.ow;
          const int64_t x0 = j * g.dw - g.pw;
          int64_t lo, hi;
          valid_range(x0, g.sw, g.w, g.ow, &lo, &hi);
          acc_t* dst = acc.data();
          if (g.sw == 1) {  // the common case, kept apart so that it vectorizes
            for (int64_t ox = lo; ox < hi; ++ox) dst[x0 + ox] += static_cast<acc_t>(src[ox]);
          } else {
            for (int64_t ox = lo; ox < hi; ++ox) dst[x0 + ox * g.sw] += static_cast<acc_t>(src[ox]);
          }
        }
      }
      T* out = img + n * g.img_n + c * g.img_c + y * g.img_h;
      for (int64_t x = 0; x < g.w; ++x) out[x * g.img_w] = static_cast<T>(acc[x]);
    }
  });
}

void im2col_cpu(const at::Tensor& image, at::Tensor& cols, const ColumnGeometry& g) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, image.scalar_type(), "cifarconv_im2col_cpu", [&] {
    im2col_kernel<scalar_t>(image.const_data_ptr<scalar_t>(), cols.mutable_data_ptr<scalar_t>(), g);
  });
}

void col2im_cpu(const at::Tensor& cols, at::Tensor& image, const ColumnGeometry& g) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, cols.scalar_type(), "cifarconv_col2im_cpu", [&] {
    col2im_kernel<scalar_t>(cols.const_data_ptr<scalar_t>(), image.mutable_data_ptr<scalar_t>(), g);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(cifarconv, CPU, m) {
  register_conv_ops<im2col_cpu, col2im_cpu>(m);
}

}  // namespace cifarconv
