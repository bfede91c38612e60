// Launchers for the CUDA im2col / col2im kernels.  Raw pointers, a geometry of plain
// integers and a stream: no ATen or cuBLAS here, so a bare nvcc compiles the kernels
// (CI does, for sm_80 and sm_90, on a machine without a GPU).  T is float, double,
// __half or __nv_bfloat16.
#pragma once

#include <cuda_runtime.h>

#include "../column_geometry.h"

namespace cifarconv {

// Each returns the launch's error (cudaSuccess when all went well).
template <typename T>
cudaError_t launch_im2col(const T* image, T* cols, const ColumnGeometry& g, cudaStream_t stream);

template <typename T>
cudaError_t launch_col2im(const T* cols, T* image, const ColumnGeometry& g, cudaStream_t stream);

}  // namespace cifarconv
