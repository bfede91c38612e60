// im2col and col2im on CUDA: one thread per output element, int64 index math, a
// grid-stride loop so any size fits the grid.  The index math is stated once in
// column_geometry.h.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "columns_kernel.h"

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

int blocks_for(int64_t total) {
  // Enough blocks to fill any GPU; the grid-stride loop covers the rest.
  return static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, 65536));
}

// Thread t fills column entry (n, k, l), l fastest, so a warp writes consecutive
// addresses: t = (n * K + k) * L + l with K = C * KH * KW and L = OH * OW.
template <typename T>
__global__ void im2col_kernel(const T* __restrict__ image, T* __restrict__ cols, const ColumnGeometry g) {
  const int64_t L = g.oh * g.ow, K = g.c * g.kh * g.kw, total = g.n * K * L;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(blockDim.x) * gridDim.x) {
    const int64_t l = t % L, k = t / L % K, n = t / (L * K);
    const int64_t ox = l % g.ow, oy = l / g.ow;
    const int64_t j = k % g.kw, i = k / g.kw % g.kh, c = k / (g.kw * g.kh);
    const int64_t iy = oy * g.sh - g.ph + i * g.dh, ix = ox * g.sw - g.pw + j * g.dw;
    const bool inside = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
    cols[n * g.col_n + k * g.col_k + l] =
        inside ? image[n * g.img_n + c * g.img_c + iy * g.img_h + ix * g.img_w] : from_acc<T>(0);
  }
}

// Thread t owns image element (n, c, y, x), x fastest: t = ((n * C + c) * H + y) * W + x.
// Gather form: it sums the column entries that im2col copied from it, in a fixed
// order, and writes once -- deterministic, no atomics.  Kernel row i reads row y from
// output row oy = (y + PH - i * DH) / SH when that division is exact and oy < OH.
template <typename T>
__global__ void col2im_kernel(const T* __restrict__ cols, T* __restrict__ image, const ColumnGeometry g) {
  using acc_t = typename Acc<T>::type;
  const int64_t total = g.n * g.c * g.h * g.w;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(blockDim.x) * gridDim.x) {
    const int64_t x = t % g.w, y = t / g.w % g.h, c = t / (g.w * g.h) % g.c, n = t / (g.w * g.h * g.c);
    acc_t sum = acc_t(0);
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t ty = y + g.ph - i * g.dh;
      if (ty < 0) break;  // ty only falls as i grows
      if (ty % g.sh != 0 || ty / g.sh >= g.oh) continue;
      const int64_t oy = ty / g.sh;
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t tx = x + g.pw - j * g.dw;
        if (tx < 0) break;
        if (tx % g.sw != 0 || tx / g.sw >= g.ow) continue;
        const int64_t k = (c * g.kh + i) * g.kw + j;
        sum += to_acc(cols[n * g.col_n + k * g.col_k + oy * g.ow + tx / g.sw]);
      }
    }
    image[n * g.img_n + c * g.img_c + y * g.img_h + x * g.img_w] = from_acc<T>(sum);
  }
}

}  // namespace

template <typename T>
cudaError_t launch_im2col(const T* image, T* cols, const ColumnGeometry& g, cudaStream_t stream) {
  const int64_t total = g.n * g.c * g.kh * g.kw * g.oh * g.ow;
  if (total == 0) return cudaSuccess;
  im2col_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(image, cols, g);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_col2im(const T* cols, T* image, const ColumnGeometry& g, cudaStream_t stream) {
  const int64_t total = g.n * g.c * g.h * g.w;
  if (total == 0) return cudaSuccess;
  col2im_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(cols, image, g);
  return cudaGetLastError();
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
