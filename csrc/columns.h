// The extension's five ops, written once for every device on top of two device kernels.
//
// A device brings im2col and col2im (cpu/columns_cpu.cpp, cuda/columns_cuda.cpp); the
// convolutions in conv2d.cpp turn them into im2col + GEMM (at::mm: MKL/oneDNN GEMM on
// CPU, cuBLAS on CUDA), and register_conv_ops binds the lot to one dispatch key.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <tuple>

#include "column_geometry.h"

namespace cifarconv {

// image (N, C, H, W) -> columns, and back; the geometry gives both tensors' strides.
using Im2col = void (*)(const at::Tensor& image, at::Tensor& cols, const ColumnGeometry& g);
using Col2im = void (*)(const at::Tensor& cols, at::Tensor& image, const ColumnGeometry& g);

struct ColumnOps {
  Im2col im2col;
  Col2im col2im;
};

at::Tensor conv2d(const ColumnOps& ops, const at::Tensor& input, const at::Tensor& weight,
                  const std::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                  at::IntArrayRef dilation, int64_t groups);
at::Tensor conv2d_grad_input(const ColumnOps& ops, const at::Tensor& grad_output, const at::Tensor& weight,
                             at::IntArrayRef input_size, at::IntArrayRef stride, at::IntArrayRef padding,
                             at::IntArrayRef dilation, int64_t groups);
std::tuple<at::Tensor, at::Tensor> conv2d_grad_weight(const ColumnOps& ops, const at::Tensor& grad_output,
                                                      const at::Tensor& input, at::IntArrayRef kernel_size,
                                                      at::IntArrayRef stride, at::IntArrayRef padding,
                                                      at::IntArrayRef dilation, int64_t groups, bool bias);
at::Tensor im2col(const ColumnOps& ops, const at::Tensor& input, at::IntArrayRef kernel_size,
                  at::IntArrayRef dilation, at::IntArrayRef padding, at::IntArrayRef stride);
at::Tensor col2im(const ColumnOps& ops, const at::Tensor& input, at::IntArrayRef output_size,
                  at::IntArrayRef kernel_size, at::IntArrayRef dilation, at::IntArrayRef padding,
                  at::IntArrayRef stride);

// Registers cifarconv::ext_* for the dispatch key of `m` with one device's kernels.
template <Im2col im2col_fn, Col2im col2im_fn>
void register_conv_ops(torch::Library& m) {
  static constexpr ColumnOps ops{im2col_fn, col2im_fn};
  m.impl("ext_conv2d", [](const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
    return conv2d(ops, input, weight, bias, stride, padding, dilation, groups);
  });
  m.impl("ext_conv2d_grad_input",
         [](const at::Tensor& grad_output, const at::Tensor& weight, at::IntArrayRef input_size,
            at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
           return conv2d_grad_input(ops, grad_output, weight, input_size, stride, padding, dilation, groups);
         });
  m.impl("ext_conv2d_grad_weight",
         [](const at::Tensor& grad_output, const at::Tensor& input, at::IntArrayRef kernel_size,
            at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, bool bias) {
           return conv2d_grad_weight(ops, grad_output, input, kernel_size, stride, padding, dilation, groups, bias);
         });
  m.impl("ext_im2col", [](const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef dilation,
                          at::IntArrayRef padding, at::IntArrayRef stride) {
    return im2col(ops, input, kernel_size, dilation, padding, stride);
  });
  m.impl("ext_col2im", [](const at::Tensor& input, at::IntArrayRef output_size, at::IntArrayRef kernel_size,
                          at::IntArrayRef dilation, at::IntArrayRef padding, at::IntArrayRef stride) {
    return col2im(ops, input, output_size, kernel_size, dilation, padding, stride);
  });
}

}  // namespace cifarconv
