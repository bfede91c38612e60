// The three conv passes on cifarconv's own CPU GEMM (conv_gemm_cpu.cpp), registered with
// the CPU's column kernels (im2col_cpu.cpp).  Each returns false when it does not take the
// call: a dtype other than float32, or the at::mm path chosen (gemm/select.h).
#pragma once

#include <ATen/core/Tensor.h>

#include "../im2col.h"

namespace cifarconv {

bool conv_forward_cpu(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias, at::Tensor& out,
                      const ConvWindow& window);
bool conv_grad_input_cpu(const at::Tensor& grad_output, const at::Tensor& weight, at::Tensor& grad_input,
                         const ConvWindow& window);
bool conv_grad_weight_cpu(const at::Tensor& grad_output, const at::Tensor& input, at::Tensor& grad_weight,
                          at::Tensor* grad_bias, const ConvWindow& window);

}  // namespace cifarconv
