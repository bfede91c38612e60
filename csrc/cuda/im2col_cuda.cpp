// Torch glue for the CUDA im2col / col2im kernels: dtype dispatch, the device guard,
// the current stream, a checked launch -- and the registration of the five ops for
// CUDA tensors.  The kernels themselves are in im2col_kernel.cu.

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <torch/library.h>

#include "../im2col.h"
#include "im2col_kernel.h"

namespace cifarconv {
namespace {

// The CUDA type with the same bits as an ATen scalar type.
template <typename T> struct CudaType { using type = T; };
template <> struct CudaType<at::Half> { using type = __half; };
template <> struct CudaType<at::BFloat16> { using type = __nv_bfloat16; };

void check_launch(cudaError_t err, const char* kernel) {
  TORCH_CHECK(err == cudaSuccess, "cifarconv: CUDA ", kernel, " launch failed: ", cudaGetErrorString(err));
}

void im2col_cuda(const at::Tensor& image, at::Tensor& cols, const ColumnGeometry& g) {
  const c10::cuda::CUDAGuard guard(image.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(image.device().index());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, image.scalar_type(), "cifarconv_im2col_cuda", [&] {
    using T = typename CudaType<scalar_t>::type;
    check_launch(launch_im2col<T>(reinterpret_cast<const T*>(image.const_data_ptr<scalar_t>()),
                                  reinterpret_cast<T*>(cols.mutable_data_ptr<scalar_t>()), g, stream),
                 "im2col");
  });
}

void col2im_cuda(const at::Tensor& cols, at::Tensor& image, const ColumnGeometry& g) {
  const c10::cuda::CUDAGuard guard(cols.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(cols.device().index());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, cols.scalar_type(), "cifarconv_col2im_cuda", [&] {
    using T = typename CudaType<scalar_t>::type;
    check_launch(launch_col2im<T>(reinterpret_cast<const T*>(cols.const_data_ptr<scalar_t>()),
                                  reinterpret_cast<T*>(image.mutable_data_ptr<scalar_t>()), g, stream),
                 "col2im");
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(cifarconv, CUDA, m) {
  register_conv_ops(m, c10::DeviceType::CUDA, {im2col_cuda, col2im_cuda});
}

}  // namespace cifarconv
