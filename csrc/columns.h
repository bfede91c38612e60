// The extension's five ops, written once for every device on top of two device kernels.
//
// A device brings im2col and col2im (cpu/columns_cpu.cpp, cuda/columns_cuda.cpp) and hands
// them to register_conv_ops in its TORCH_LIBRARY_IMPL block; the ops themselves, in
// conv2d.cpp, turn them into im2col + GEMM (at::mm: MKL/oneDNN GEMM on CPU, cuBLAS on CUDA).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <torch/library.h>

#include "column_geometry.h"

namespace cifarconv {

// image (N, C, H, W) -> columns, and back; the geometry gives both tensors' strides.
using Im2col = void (*)(const at::Tensor& image, at::Tensor& cols, const ColumnGeometry& g);
using Col2im = void (*)(const at::Tensor& cols, at::Tensor& image, const ColumnGeometry& g);

struct ColumnOps {
  Im2col im2col;
  Col2im col2im;
};

// Registers the ops cifarconv::ext_* of conv2d.cpp for the dispatch key of `m`, and `ops`
// as the column kernels they run on tensors of `device`.
void register_conv_ops(torch::Library& m, c10::DeviceType device, ColumnOps ops);

}  // namespace cifarconv
