// im2col and col2im on CUDA, for both column layouts of column_geometry.h (where the
// index math is stated once, shared with the CPU kernels).  Every kernel is a grid-stride
// loop over one flat index, split into coordinates by precomputed divisors
// (Divisor<int32_t>: a multiply and two shifts) when every offset fits 32 bits, by int64
// division when the geometry says index64.
//
//   channel-major   one thread per column entry (im2col) or image element (col2im);
//                   l, or x, fastest, so a warp writes one row run.
//   pixel-major     one thread per V channels of one (pixel, tap): V = 16 bytes / element
//                   when the channels are contiguous and 16-byte aligned (a vector load
//                   and store each), else 1.  Neighbouring threads take neighbouring
//                   channels, so image reads and column writes are both coalesced.
//
// col2im is in gather form: each thread sums the column entries of its own image
// element(s) in a fixed order and writes once -- deterministic, no atomics.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "im2col_kernel.h"

namespace cifarconv {
namespace {

constexpr int kThreads = 256;

// Sums run in float for the 16-bit types, in the element type otherwise.
template <typename T> struct Acc { using type = T; };
template <> struct Acc<__half> { using type = float; };
template <> struct Acc<__nv_bfloat16> { using type = float; };

template <typename T> __device__ T from_acc(typename Acc<T>::type v) { return v; }
template <> __device__ __half from_acc<__half>(float v) { return __float2half(v); }
template <> __device__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) { return __float2bfloat16(v); }

template <typename T> __device__ typename Acc<T>::type to_acc(T v) { return v; }
template <> __device__ float to_acc<__half>(__half v) { return __half2float(v); }
template <> __device__ float to_acc<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

// V elements moved as one access (16 bytes for the vector width chosen below).
template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

int blocks_for(int64_t total) {
  // Enough blocks to fill any GPU; the grid-stride loop covers the rest.
  return static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, 65536));
}

// ---------------------------------------------------------------- channel-major

template <typename I>
struct ChannelMajorDivisors {
  Divisor<I> pixels, ow, taps, kw, c, w, hw, sh, sw;
  explicit ChannelMajorDivisors(const ColumnGeometry& g)
      : pixels(g.oh * g.ow), ow(g.ow), taps(g.kh * g.kw), kw(g.kw), c(g.c), w(g.w), hw(g.h * g.w), sh(g.sh),
        sw(g.sw) {}
};

// Thread t fills column entry (n, c, i, j, l) with t = (((n * C + c) * KH + i) * KW + j) * L + l.
template <typename T, typename I>
__global__ void im2col_channel_major(const T* __restrict__ image, T* __restrict__ cols, const Geometry<I> g,
                                     const ChannelMajorDivisors<I> div, const I total) {
  for (I t = blockIdx.x * I(blockDim.x) + threadIdx.x; t < total; t += I(blockDim.x) * gridDim.x) {
    I row, l, nc, tap, n, c, i, j, oy, ox;
    div.pixels.divmod(t, &row, &l);
    div.taps.divmod(row, &nc, &tap);
    div.c.divmod(nc, &n, &c);
    div.kw.divmod(tap, &i, &j);
    div.ow.divmod(l, &oy, &ox);
    const I iy = tap_y(g, oy, i), ix = tap_x(g, ox, j);
    const bool inside = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
    cols[column_offset(g, n, column_k(g, I(0), c, i, j), l)] =
        inside ? image[image_offset(g, n, c, iy, ix)] : from_acc<T>(0);
  }
}

// Thread t owns image element (n, c, y, x), t = ((n * C + c) * H + y) * W + x, and sums
// the entries that im2col copied from it: tap (i, j) at output (oy, ox) (source_output).
template <typename T, typename I>
__global__ void col2im_channel_major(const T* __restrict__ cols, T* __restrict__ image, const Geometry<I> g,
                                     const ChannelMajorDivisors<I> div, const I total) {
  using acc_t = typename Acc<T>::type;
  for (I t = blockIdx.x * I(blockDim.x) + threadIdx.x; t < total; t += I(blockDim.x) * gridDim.x) {
    I nc, yx, n, c, y, x;
    div.hw.divmod(t, &nc, &yx);
    div.c.divmod(nc, &n, &c);
    div.w.divmod(yx, &y, &x);
    acc_t sum = acc_t(0);
    for_each_reading_tap(g, div.sh, div.sw, y, x, [&](I i, I j, I oy, I ox) {
      sum += to_acc(cols[column_offset(g, n, column_k(g, I(0), c, i, j), oy * g.ow + ox)]);
    });
    image[image_offset(g, n, c, y, x)] = from_acc<T>(sum);
  }
}

// ---------------------------------------------------------------- pixel-major

template <typename I>
struct PixelMajorDivisors {
  Divisor<I> row_vectors, group_vectors, taps, kw, pixels, ow, channel_vectors, hw, w, sh, sw;
  PixelMajorDivisors(const ColumnGeometry& g, int64_t v)
      : row_vectors(g.c / v * g.kh * g.kw), group_vectors(g.cg / v), taps(g.kh * g.kw), kw(g.kw),
        pixels(g.oh * g.ow), ow(g.ow), channel_vectors(g.c / v), hw(g.h * g.w), w(g.w), sh(g.sh), sw(g.sw) {}
};

// Thread t copies channels [c0, c0 + V) of group grp, tap (i, j), into output pixel p's
// row: t = p * (G * KH * KW * Cg / V) + ((grp * KH + i) * KW + j) * (Cg / V) + c0 / V,
// so a warp copies a run of channels, then the next tap.  col_k is 1.
template <typename T, typename I, int V>
__global__ void im2col_pixel_major(const T* __restrict__ image, T* __restrict__ cols, const Geometry<I> g,
                                   const PixelMajorDivisors<I> div, const I total) {
  using vec_t = Vec<T, V>;
  for (I t = blockIdx.x * I(blockDim.x) + threadIdx.x; t < total; t += I(blockDim.x) * gridDim.x) {
    I p, r, gtap, cv, grp, tap, i, j, n, l, oy, ox;
    div.row_vectors.divmod(t, &p, &r);
    div.group_vectors.divmod(r, &gtap, &cv);
    div.taps.divmod(gtap, &grp, &tap);
    div.kw.divmod(tap, &i, &j);
    div.pixels.divmod(p, &n, &l);
    div.ow.divmod(l, &oy, &ox);
    const I c = grp * g.cg + cv * V;
    const I iy = tap_y(g, oy, i), ix = tap_x(g, ox, j);
    vec_t value;
    if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) {
      const T* src = image + image_offset(g, n, c, iy, ix);
      if constexpr (V > 1) {
        value = *reinterpret_cast<const vec_t*>(src);  // channels contiguous: img_c == 1
      } else {
        value.v[0] = *src;
      }
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) value.v[e] = from_acc<T>(0);
    }
    *reinterpret_cast<vec_t*>(cols + column_offset(g, n, column_k(g, grp, c, i, j), l)) = value;
  }
}

// Thread t owns channels [c0, c0 + V) of image pixel q = (n, y, x): t = q * (C / V) + c0 / V.
// It sums, per channel in a fixed order, the row entries of every tap that read them.
template <typename T, typename I, int V>
__global__ void col2im_pixel_major(const T* __restrict__ cols, T* __restrict__ image, const Geometry<I> g,
                                   const PixelMajorDivisors<I> div, const I total) {
  using acc_t = typename Acc<T>::type;
  using vec_t = Vec<T, V>;
  for (I t = blockIdx.x * I(blockDim.x) + threadIdx.x; t < total; t += I(blockDim.x) * gridDim.x) {
    I q, cvec, n, yx, y, x, grp, cv;
    div.channel_vectors.divmod(t, &q, &cvec);
    div.hw.divmod(q, &n, &yx);
    div.w.divmod(yx, &y, &x);
    div.group_vectors.divmod(cvec, &grp, &cv);
    const I c = grp * g.cg + cv * V;
    acc_t sum[V];
#pragma unroll
    for (int e = 0; e < V; ++e) sum[e] = acc_t(0);
    for_each_reading_tap(g, div.sh, div.sw, y, x, [&](I i, I j, I oy, I ox) {
      const vec_t entries =
          *reinterpret_cast<const vec_t*>(cols + column_offset(g, n, column_k(g, grp, c, i, j), oy * g.ow + ox));
#pragma unroll
      for (int e = 0; e < V; ++e) sum[e] += to_acc(entries.v[e]);
    });
    vec_t out;
#pragma unroll
    for (int e = 0; e < V; ++e) out.v[e] = from_acc<T>(sum[e]);
    T* dst = image + image_offset(g, n, c, y, x);
    if constexpr (V > 1) {
      *reinterpret_cast<vec_t*>(dst) = out;  // channels contiguous: img_c == 1
    } else {
      *dst = out.v[0];
    }
  }
}

// ---------------------------------------------------------------- launch

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The pixel-major vector width: 16 bytes when the channels are contiguous in the image and
// every vector's first element, in image and columns alike, is 16-byte aligned.
template <typename T>
int64_t vector_width(const ColumnGeometry& g, const void* image, const void* cols) {
  const int64_t v = 16 / sizeof(T);
  const bool ok = g.img_c == 1 && g.cg % v == 0 && g.img_w % v == 0 && g.img_h % v == 0 && g.img_n % v == 0 &&
                  g.col_n % v == 0 && g.col_l % v == 0 && aligned16(image) && aligned16(cols);
  return ok ? v : 1;
}

template <typename T, typename I>
cudaError_t launch_im2col_as(const T* image, T* cols, const ColumnGeometry& g, cudaStream_t stream) {
  const Geometry<I> gi = g.as<I>();
  if (g.layout == ColumnLayout::kChannelMajor) {
    const int64_t total = g.n * g.c * g.kh * g.kw * g.oh * g.ow;
    im2col_channel_major<T, I><<<blocks_for(total), kThreads, 0, stream>>>(image, cols, gi,
                                                                          ChannelMajorDivisors<I>(g), I(total));
  } else {
    constexpr int kV = 16 / sizeof(T);
    const int64_t v = vector_width<T>(g, image, cols);
    const int64_t total = g.n * g.oh * g.ow * g.kh * g.kw * (g.c / v);
    const PixelMajorDivisors<I> div(g, v);
    if (v == kV) {
      im2col_pixel_major<T, I, kV><<<blocks_for(total), kThreads, 0, stream>>>(image, cols, gi, div, I(total));
    } else {
      im2col_pixel_major<T, I, 1><<<blocks_for(total), kThreads, 0, stream>>>(image, cols, gi, div, I(total));
    }
  }
  return cudaGetLastError();
}

template <typename T, typename I>
cudaError_t launch_col2im_as(const T* cols, T* image, const ColumnGeometry& g, cudaStream_t stream) {
  const Geometry<I> gi = g.as<I>();
  if (g.layout == ColumnLayout::kChannelMajor) {
    const int64_t total = g.n * g.c * g.h * g.w;
    col2im_channel_major<T, I><<<blocks_for(total), kThreads, 0, stream>>>(cols, image, gi,
                                                                          ChannelMajorDivisors<I>(g), I(total));
  } else {
    constexpr int kV = 16 / sizeof(T);
    const int64_t v = vector_width<T>(g, image, cols);
    const int64_t total = g.n * g.h * g.w * (g.c / v);
    const PixelMajorDivisors<I> div(g, v);
    if (v == kV) {
      col2im_pixel_major<T, I, kV><<<blocks_for(total), kThreads, 0, stream>>>(cols, image, gi, div, I(total));
    } else {
      col2im_pixel_major<T, I, 1><<<blocks_for(total), kThreads, 0, stream>>>(cols, image, gi, div, I(total));
    }
  }
  return cudaGetLastError();
}

}  // namespace

template <typename T>
cudaError_t launch_im2col(const T* image, T* cols, const ColumnGeometry& g, cudaStream_t stream) {
  if (g.n * g.c * g.kh * g.kw * g.oh * g.ow == 0) return cudaSuccess;
  return g.index64 ? launch_im2col_as<T, int64_t>(image, cols, g, stream)
                   : launch_im2col_as<T, int32_t>(image, cols, g, stream);
}

template <typename T>
cudaError_t launch_col2im(const T* cols, T* image, const ColumnGeometry& g, cudaStream_t stream) {
  if (g.n * g.c * g.h * g.w == 0) return cudaSuccess;
  return g.index64 ? launch_col2im_as<T, int64_t>(cols, image, g, stream)
                   : launch_col2im_as<T, int32_t>(cols, image, g, stream);
}

#define CIFARCONV_INSTANTIATE(T)                                                               \
  template cudaError_t launch_im2col<T>(const T*, T*, const ColumnGeometry&, cudaStream_t); \
  template cudaError_t launch_col2im<T>(const T*, T*, const ColumnGeometry&, cudaStream_t);
CIFARCONV_INSTANTIATE(float)
CIFARCONV_INSTANTIATE(double)
CIFARCONV_INSTANTIATE(__half)
CIFARCONV_INSTANTIATE(__nv_bfloat16)
#undef CIFARCONV_INSTANTIATE

}  // namespace cifarconv
