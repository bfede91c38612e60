// The extension's five ops, written once for every device on top of two device kernels.
//
// A device brings im2col and col2im (cpu/im2col_cpu.cpp, cuda/im2col_cuda.cpp) and hands
// them to register_conv_ops in its TORCH_LIBRARY_IMPL block; the ops themselves, in
// conv2d.cpp, turn them into im2col + GEMM (at::mm: MKL/oneDNN GEMM on CPU, cuBLAS on CUDA).
// A device may also bring whole passes that need no column matrix (the CPU: its own packed
// GEMM with im2col in the packing, cpu/conv_gemm_cpu.cpp); the ops try those first.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <torch/library.h>

#include "column_geometry.h"

namespace cifarconv {

// image (N, C, H, W) -> columns, and back; the geometry gives both tensors' strides.
using Im2col = void (*)(const at::Tensor& image, at::Tensor& cols, const ColumnGeometry& g);
using Col2im = void (*)(const at::Tensor& cols, at::Tensor& image, const ColumnGeometry& g);

// The window of a convolution, as the ops received it (checked).
struct ConvWindow {
  at::IntArrayRef kernel, stride, padding, dilation;
  int64_t groups;
};

// Whole passes into outputs the op allocated (out, grad_input: in the activations' layout;
// grad_weight (C_out, C_in / G, KH, KW) contiguous, grad_bias (C_out) or null).  Each
// returns false when it does not take the call (a dtype or path it does not run); the op
// then runs im2col + at::mm.
using ForwardPass = bool (*)(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                             at::Tensor& out, const ConvWindow& window);
using GradInputPass = bool (*)(const at::Tensor& grad_output, const at::Tensor& weight, at::Tensor& grad_input,
                               const ConvWindow& window);
using GradWeightPass = bool (*)(const at::Tensor& grad_output, const at::Tensor& input, at::Tensor& grad_weight,
                                at::Tensor* grad_bias, const ConvWindow& window);

struct ColumnOps {
  Im2col im2col;
  Col2im col2im;
  ForwardPass forward = nullptr;
  GradInputPass grad_input = nullptr;
  GradWeightPass grad_weight = nullptr;
};

// Registers the ops cifarconv::ext_* of conv2d.cpp for the dispatch key of `m`, and `ops`
// as the column kernels they run on tensors of `device`.
void register_conv_ops(torch::Library& m, c10::DeviceType device, ColumnOps ops);

}  // namespace cifarconv
