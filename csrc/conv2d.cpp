// The extension's five ops: convolution as im2col + GEMM, for any device that brings
// im2col/col2im kernels (register_conv_ops, at the end, binds them to its dispatch key).
//
// Shapes (G = groups, M = C_out / G, K = C_in / G * KH * KW, L = OH * OW, b images per
// chunk, P = b L their output pixels).  The column layout follows the activations'
// (column_geometry.h), so that no GEMM operand or result needs a transpose or a copy:
//
// A device may bring whole passes that need no column matrix (ColumnOps::forward, ...: on
// CPU, float32 runs cifarconv's own packed GEMM with im2col in its packing, see
// cpu/conv_gemm_cpu.cpp); each op tries that first.  Otherwise, and for every other dtype:
//
//   NCHW, channel-major columns cols[g] (K x P), k = (c, i, j):
//     forward      y[g]     (M x P) = W[g] (M x K)    @ cols[g] (K x P)     (+ bias)
//     grad input   dcols[g] (K x P) = W[g]^T (K x M)  @ dy[g] (M x P),      dx = col2im(dcols)
//     grad weight  dW[g]    (M x K) = sum over chunks of dy[g] (M x P) @ cols[g]^T (P x K)
//
//   NHWC, pixel-major columns cols[g] (P x K), k = (i, j, c):  W' = the weight with its
//   taps in that order, (G, M, KH, KW, C_in / G), rearranged once per call
//     forward      y[g]     (P x M) = cols[g] (P x K) @ W'[g]^T (K x M)     (+ bias)
//     grad input   dcols[g] (P x K) = dy[g] (P x M)   @ W'[g] (M x K),      dx = col2im(dcols)
//     grad weight  dW'[g]   (M x K) = sum over chunks of dy[g]^T (M x P) @ cols[g] (P x K)
//   where y, dy and dx are plain row blocks of the NHWC tensors: (N OH OW x C) matrices.
//
// cols holds a chunk of b images at once, so one large GEMM serves b images instead of
// one GEMM per image as in PyTorch's slow_conv2d.  b is as many images as fit the
// workspace (CIFARCONV_WORKSPACE_MB), so memory stays bounded whatever the batch.  A 1x1
// kernel with stride 1 and no padding needs no im2col: the image already is its column
// matrix.  Grad weight sums in float32 for 16-bit types.

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/OpMathType.h>
#include <c10/core/DeviceGuard.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <vector>

#include "chunks.h"
#include "im2col.h"

namespace cifarconv {
namespace {

using at::IntArrayRef;
using at::Tensor;

at::MemoryFormat activation_format(const Tensor& t) {
  // The op layer's layout rule (cifarconv/ops/meta.py): strictly channels_last in, channels_last out.
  const bool channels_last = t.is_contiguous(at::MemoryFormat::ChannelsLast) && !t.is_contiguous();
  return channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

bool is_nhwc(const Tensor& t) {
  return t.permute({0, 2, 3, 1}).is_contiguous();
}

int64_t output_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

void check_window(const char* op, IntArrayRef kernel, IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation) {
  TORCH_CHECK(kernel.size() == 2 && stride.size() == 2 && padding.size() == 2 && dilation.size() == 2, op,
              ": kernel_size, stride, padding and dilation must have 2 values each");
  for (int d = 0; d < 2; ++d) {
    TORCH_CHECK(kernel[d] > 0 && stride[d] > 0 && dilation[d] > 0, op,
                ": kernel_size, stride and dilation must be positive, got kernel_size=", kernel, ", stride=", stride,
                ", dilation=", dilation);
    TORCH_CHECK(padding[d] >= 0, op, ": padding must be non-negative, got ", padding);
  }
}

// The output (OH, OW) of a window over an (h, w) image; it must not be empty.
std::pair<int64_t, int64_t> output_hw(const char* op, int64_t h, int64_t w, IntArrayRef kernel, IntArrayRef stride,
                                      IntArrayRef padding, IntArrayRef dilation) {
  const int64_t oh = output_size(h, kernel[0], stride[0], padding[0], dilation[0]);
  const int64_t ow = output_size(w, kernel[1], stride[1], padding[1], dilation[1]);
  TORCH_CHECK(oh > 0 && ow > 0, op, ": the (dilated) kernel ", kernel, " with dilation ", dilation,
              " does not fit the padded input of size (", h, ", ", w, ") with padding ", padding);
  return {oh, ow};
}

// Two 4-D tensors of one dtype on one device, and a positive group count.
void check_pair(const char* op, const Tensor& a, const Tensor& b, int64_t groups) {
  TORCH_CHECK(a.dim() == 4 && b.dim() == 4, op, ": expected 4-D tensors, got shapes ", a.sizes(), " and ",
              b.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), op, ": dtypes differ: ", a.scalar_type(), " and ",
              b.scalar_type());
  TORCH_CHECK(a.device() == b.device(), op, ": tensors are on different devices: ", a.device(), " and ",
              b.device());
  TORCH_CHECK(groups > 0, op, ": groups must be positive, got ", groups);
}

void check_conv(const char* op, const Tensor& activation, const Tensor& weight, int64_t groups) {
  check_pair(op, activation, weight, groups);
  TORCH_CHECK(weight.size(0) % groups == 0, op, ": groups=", groups, " does not divide the weight's ",
              weight.size(0), " output channels");
}

// CIFARCONV_INDEX_BITS=64 runs every kernel on 64-bit index math, which by default only
// tensors with offsets past 2^31 get (tests use it to check that path on small tensors).
bool force_index64() {
  const char* env = std::getenv("CIFARCONV_INDEX_BITS");
  if (env == nullptr || *env == '\0') return false;
  TORCH_CHECK(std::strcmp(env, "64") == 0, "CIFARCONV_INDEX_BITS must be 64 (or unset), got '", env, "'");
  return true;
}

// The extension's settings, checked on every call whichever kernels run, so that a bad
// value is an error wherever it is set (a device's whole-pass kernels, such as the CPU's
// packed GEMM, read neither).
void check_settings() {
  force_index64();
  user_workspace_bytes();
}

// The geometry of `image` and its columns: channel-major (K x columns, col_l = 1) with
// row stride col_k, or pixel-major (one row of G K entries per output pixel, col_k = 1).
ColumnGeometry geometry(const Tensor& image, IntArrayRef kernel, IntArrayRef stride, IntArrayRef padding,
                        IntArrayRef dilation, int64_t groups, ColumnLayout layout, int64_t col_n, int64_t col_k,
                        int64_t col_l) {
  ColumnGeometry g;
  g.n = image.size(0), g.c = image.size(1), g.h = image.size(2), g.w = image.size(3);
  g.cg = g.c / groups;
  g.kh = kernel[0], g.kw = kernel[1];
  g.sh = stride[0], g.sw = stride[1], g.ph = padding[0], g.pw = padding[1], g.dh = dilation[0], g.dw = dilation[1];
  g.oh = output_size(g.h, g.kh, g.sh, g.ph, g.dh), g.ow = output_size(g.w, g.kw, g.sw, g.pw, g.dw);
  g.img_n = image.stride(0), g.img_c = image.stride(1), g.img_h = image.stride(2), g.img_w = image.stride(3);
  g.col_n = col_n, g.col_k = col_k, g.col_l = col_l;
  g.layout = layout;
  g.index64 = force_index64() || !fits_int32(g);
  return g;
}

// A chunk of b images' columns, (K x b L) for b images side by side.
ColumnGeometry channel_major(const Tensor& images, IntArrayRef kernel, IntArrayRef stride, IntArrayRef padding,
                             IntArrayRef dilation, int64_t L) {
  return geometry(images, kernel, stride, padding, dilation, 1, ColumnLayout::kChannelMajor, /*col_n=*/L,
                  /*col_k=*/images.size(0) * L, /*col_l=*/1);
}

// A chunk of b images' columns, (b L x G K): one row per output pixel.
ColumnGeometry pixel_major(const Tensor& images, IntArrayRef kernel, IntArrayRef stride, IntArrayRef padding,
                           IntArrayRef dilation, int64_t groups, int64_t L) {
  const int64_t row = images.size(1) * kernel[0] * kernel[1];
  return geometry(images, kernel, stride, padding, dilation, groups, ColumnLayout::kPixelMajor, /*col_n=*/L * row,
                  /*col_k=*/1, /*col_l=*/row);
}

// The weight (C_out, C_in / G, KH, KW) with its taps in pixel-major order, (G, M, KH KW C_in / G).
Tensor weight_by_taps(const Tensor& weight, int64_t groups) {
  const int64_t c_out = weight.size(0);
  return weight.permute({0, 2, 3, 1}).contiguous().view({groups, c_out / groups, -1});
}

// An NHWC tensor as its (N H W x C) matrix of pixel rows.
Tensor pixel_rows(const Tensor& t) {
  return t.permute({0, 2, 3, 1}).view({-1, t.size(1)});
}

// float32 on CUDA: the GEMMs use TF32 exactly when torch's own convolution would, i.e. when
// cuDNN's conv precision is TF32 (torch.backends.cudnn.conv.fp32_precision, which the older
// torch.backends.cudnn.allow_tf32 also sets), whatever cuBLAS's own matmul setting is.
// at::mm reads that setting, so it is switched for the op's lifetime and restored after.
// It is process-wide: a matmul on another host thread during the op sees it too.
class ConvGemmPrecision {
 public:
  explicit ConvGemmPrecision(const Tensor& t) {
    if (!t.is_cuda() || t.scalar_type() != at::kFloat) return;
    auto& ctx = at::globalContext();
    saved_ = ctx.float32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL);
    const auto conv = ctx.allowTF32CuDNN(at::Float32Op::CONV) ? at::Float32Precision::TF32 : at::Float32Precision::IEEE;
    if (conv != saved_) {
      ctx.setFloat32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL, conv);
      switched_ = true;
    }
  }
  ~ConvGemmPrecision() {
    if (switched_) at::globalContext().setFloat32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL, saved_);
  }
  ConvGemmPrecision(const ConvGemmPrecision&) = delete;
  ConvGemmPrecision& operator=(const ConvGemmPrecision&) = delete;

 private:
  at::Float32Precision saved_ = at::Float32Precision::NONE;
  bool switched_ = false;
};

// Each device type's column kernels, set by register_conv_ops when the library loads (a
// function-local static, so it exists before any file's registration runs).
ColumnOps& column_ops(c10::DeviceType device) {
  static ColumnOps cpu{}, cuda{};
  TORCH_CHECK(device == c10::DeviceType::CPU || device == c10::DeviceType::CUDA, "cifarconv: no column kernels for ",
              device, " tensors");
  return device == c10::DeviceType::CPU ? cpu : cuda;
}

// The column kernels the ops run on `t`'s device.
const ColumnOps& column_ops_for(const Tensor& t) {
  const ColumnOps& ops = column_ops(t.device().type());
  TORCH_CHECK(ops.im2col != nullptr && ops.col2im != nullptr, "cifarconv: this build of the extension has no ",
              t.device().type(), " kernels");
  return ops;
}

bool is_pointwise(IntArrayRef kernel, IntArrayRef stride, IntArrayRef padding) {
  return kernel[0] == 1 && kernel[1] == 1 && stride[0] == 1 && stride[1] == 1 && padding[0] == 0 && padding[1] == 0;
}

// The chunks of a loop over n images whose columns have col_rows (G K) rows, with a
// (c_out x b L) operand in the workspace too (0 for NHWC); wide: see ChunkSchedule.
ChunkSchedule schedule_chunks(int64_t n, int64_t col_rows, int64_t c_out, int64_t L, const Tensor& like, bool wide) {
  return ChunkSchedule(n, ChunkWorkspace::bytes_per_image(col_rows, c_out, L, like), L, col_rows * L, like.device(),
                       wide);
}

Tensor conv2d(const Tensor& input, const Tensor& weight, const std::optional<Tensor>& bias, IntArrayRef stride,
              IntArrayRef padding, IntArrayRef dilation, int64_t groups) {
  const char* op = "cifarconv::ext_conv2d";
  const ColumnOps& ops = column_ops_for(input);
  const c10::OptionalDeviceGuard guard(at::device_of(input));
  const ConvGemmPrecision precision(input);
  check_conv(op, input, weight, groups);
  const IntArrayRef kernel = weight.sizes().slice(2);
  check_window(op, kernel, stride, padding, dilation);
  const int64_t n = input.size(0), c_in = input.size(1), c_out = weight.size(0), G = groups;
  TORCH_CHECK(c_in == weight.size(1) * G, op, ": input has ", c_in, " channels but weight ", weight.sizes(),
              " with groups=", G, " expects ", weight.size(1) * G);
  const bool has_bias = bias.has_value() && bias->defined();
  TORCH_CHECK(!has_bias || (bias->dim() == 1 && bias->size(0) == c_out && bias->scalar_type() == input.scalar_type()),
              op, ": bias must be a 1-D tensor of ", c_out, " values of the input's dtype");
  const auto [oh, ow] = output_hw(op, input.size(2), input.size(3), kernel, stride, padding, dilation);
  const int64_t L = oh * ow, M = c_out / G, K = c_in / G * kernel[0] * kernel[1];

  Tensor out = at::empty({n, c_out, oh, ow}, input.options().memory_format(activation_format(input)));
  if (out.numel() == 0) return out;
  if (K == 0) {  // no input channels: nothing to sum, y is the bias
    return has_bias ? out.copy_(bias->view({1, c_out, 1, 1}).expand_as(out)) : out.zero_();
  }
  check_settings();
  if (ops.forward != nullptr &&
      ops.forward(input, weight, has_bias ? &*bias : nullptr, out, {kernel, stride, padding, dilation, G})) {
    return out;
  }

  if (G == 1 && is_pointwise(kernel, stride, padding)) {
    const Tensor w = weight.reshape({c_out, c_in});
    if (is_nhwc(out) && is_nhwc(input)) {  // pixels are rows: y (nL x C_out) = x (nL x C_in) @ W^T
      Tensor y = pixel_rows(out);
      const Tensor x = pixel_rows(input);
      has_bias ? at::addmm_out(y, *bias, x, w.t()) : at::mm_out(y, x, w.t());
    } else {  // every image's (C_in x L) plane is its column matrix: one batched GEMM
      Tensor y = out.view({n, c_out, L});
      at::matmul_out(y, w, input.reshape({n, c_in, L}));
      if (has_bias) y.add_(bias->view({1, c_out, 1}));
    }
    return out;
  }

  if (is_nhwc(out) && is_nhwc(input)) {  // pixel-major: y (b L x M) = cols (b L x K) @ W'^T, straight into out
    const Tensor w_taps = weight_by_taps(weight, G);
    Tensor y_all = pixel_rows(out);
    const ChunkSchedule chunks = schedule_chunks(n, G * K, /*c_out=*/0, L, input, /*wide=*/true);
    const ChunkWorkspace space(chunks, G * K, /*c_out=*/0, L, input);
    chunks.for_each([&](int64_t n0, int64_t b, int64_t slot) {
      const Tensor x = input.narrow(0, n0, b);
      Tensor cols = space.pixel_columns(b, slot);
      ops.im2col(x, cols, pixel_major(x, kernel, stride, padding, dilation, G, L));
      Tensor y = y_all.narrow(0, n0 * L, b * L);
      for (int64_t g = 0; g < G; ++g) {
        Tensor yg = y.narrow(1, g * M, M);
        const Tensor cols_g = cols.narrow(1, g * K, K);
        has_bias ? at::addmm_out(yg, bias->narrow(0, g * M, M), cols_g, w_taps[g].t())
                 : at::mm_out(yg, cols_g, w_taps[g].t());
      }
    });
    return out;
  }

  const Tensor w = weight.reshape({G, M, K});
  const ChunkSchedule chunks = schedule_chunks(n, G * K, c_out, L, input, /*wide=*/true);
  const ChunkWorkspace space(chunks, G * K, c_out, L, input);
  chunks.for_each([&](int64_t n0, int64_t b, int64_t slot) {
    const Tensor x = input.narrow(0, n0, b);
    Tensor cols = space.columns(b, slot);
    ops.im2col(x, cols, channel_major(x, kernel, stride, padding, dilation, L));
    // One NCHW image is written in place; otherwise through the workspace, then transposed.
    const bool in_place = b == 1 && out[n0].is_contiguous();
    Tensor y = in_place ? out[n0].view({c_out, L}) : space.rows(b, slot);
    for (int64_t g = 0; g < G; ++g) {
      Tensor yg = y.narrow(0, g * M, M);
      const Tensor cols_g = cols.narrow(0, g * K, K);
      has_bias ? at::addmm_out(yg, bias->narrow(0, g * M, M).view({M, 1}), w[g], cols_g)
               : at::mm_out(yg, w[g], cols_g);
    }
    if (!in_place) out.narrow(0, n0, b).transpose(0, 1).copy_(y.view({c_out, b, oh, ow}));
  });
  return out;
}

Tensor conv2d_grad_input(const Tensor& grad_output, const Tensor& weight, IntArrayRef input_size, IntArrayRef stride,
                         IntArrayRef padding, IntArrayRef dilation, int64_t groups) {
  const char* op = "cifarconv::ext_conv2d_grad_input";
  const ColumnOps& ops = column_ops_for(grad_output);
  const c10::OptionalDeviceGuard guard(at::device_of(grad_output));
  const ConvGemmPrecision precision(grad_output);
  const Tensor& dy = grad_output;
  check_conv(op, dy, weight, groups);
  const IntArrayRef kernel = weight.sizes().slice(2);
  check_window(op, kernel, stride, padding, dilation);
  TORCH_CHECK(input_size.size() == 2, op, ": input_size must have 2 values");
  const int64_t n = dy.size(0), c_out = weight.size(0), G = groups, c_in = weight.size(1) * G;
  const auto [oh, ow] = output_hw(op, input_size[0], input_size[1], kernel, stride, padding, dilation);
  TORCH_CHECK(dy.size(1) == c_out && dy.size(2) == oh && dy.size(3) == ow, op, ": grad_output has shape ",
              dy.sizes(), " but this convolution's output is (", n, ", ", c_out, ", ", oh, ", ", ow, ")");
  const int64_t L = oh * ow, M = c_out / G, K = c_in / G * kernel[0] * kernel[1];

  Tensor dx = at::empty({n, c_in, input_size[0], input_size[1]}, dy.options().memory_format(activation_format(dy)));
  if (dx.numel() == 0) return dx;
  if (M == 0) return dx.zero_();  // no output channels: nothing reaches dx
  check_settings();
  if (ops.grad_input != nullptr && ops.grad_input(dy, weight, dx, {kernel, stride, padding, dilation, G})) return dx;

  if (G == 1 && is_pointwise(kernel, stride, padding)) {
    const Tensor w = weight.reshape({c_out, c_in});
    if (is_nhwc(dx) && is_nhwc(dy)) {  // dx (nL x C_in) = dy (nL x C_out) @ W
      Tensor dx2 = pixel_rows(dx);
      at::mm_out(dx2, pixel_rows(dy), w);
    } else {
      Tensor dx3 = dx.view({n, c_in, L});
      at::matmul_out(dx3, w.t(), dy.reshape({n, c_out, L}));
    }
    return dx;
  }

  if (is_nhwc(dx) && is_nhwc(dy)) {  // pixel-major: dcols (b L x K) = dy (b L x M) @ W', dy read in place
    const Tensor w_taps = weight_by_taps(weight, G);
    const Tensor dy_all = pixel_rows(dy);
    const ChunkSchedule chunks = schedule_chunks(n, G * K, /*c_out=*/0, L, dy, /*wide=*/true);
    const ChunkWorkspace space(chunks, G * K, /*c_out=*/0, L, dy);
    chunks.for_each([&](int64_t n0, int64_t b, int64_t slot) {
      const Tensor dy_rows = dy_all.narrow(0, n0 * L, b * L);
      Tensor dcols = space.pixel_columns(b, slot);
      for (int64_t g = 0; g < G; ++g) {
        Tensor dcols_g = dcols.narrow(1, g * K, K);
        at::mm_out(dcols_g, dy_rows.narrow(1, g * M, M), w_taps[g]);
      }
      Tensor dx_chunk = dx.narrow(0, n0, b);
      ops.col2im(dcols, dx_chunk, pixel_major(dx_chunk, kernel, stride, padding, dilation, G, L));
    });
    return dx;
  }

  const Tensor w = weight.reshape({G, M, K});
  const ChunkSchedule chunks = schedule_chunks(n, G * K, c_out, L, dy, /*wide=*/true);
  const ChunkWorkspace space(chunks, G * K, c_out, L, dy);
  chunks.for_each([&](int64_t n0, int64_t b, int64_t slot) {
    const Tensor dy_rows = space.channel_rows(dy, n0, b, slot);
    Tensor dcols = space.columns(b, slot);
    for (int64_t g = 0; g < G; ++g) {
      Tensor dcols_g = dcols.narrow(0, g * K, K);
      at::mm_out(dcols_g, w[g].t(), dy_rows.narrow(0, g * M, M));
    }
    Tensor dx_chunk = dx.narrow(0, n0, b);
    ops.col2im(dcols, dx_chunk, channel_major(dx_chunk, kernel, stride, padding, dilation, L));
  });
  return dx;
}

std::tuple<Tensor, Tensor> conv2d_grad_weight(const Tensor& grad_output, const Tensor& input, IntArrayRef kernel,
                                              IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                                              int64_t groups, bool bias) {
  const char* op = "cifarconv::ext_conv2d_grad_weight";
  const ColumnOps& ops = column_ops_for(input);
  const c10::OptionalDeviceGuard guard(at::device_of(input));
  const ConvGemmPrecision precision(input);
  const Tensor& dy = grad_output;
  check_pair(op, input, dy, groups);
  check_window(op, kernel, stride, padding, dilation);
  const int64_t n = input.size(0), c_in = input.size(1), c_out = dy.size(1), G = groups;
  TORCH_CHECK(c_in % G == 0 && c_out % G == 0, op, ": groups=", G, " must divide both ", c_in,
              " input and ", c_out, " output channels");
  const auto [oh, ow] = output_hw(op, input.size(2), input.size(3), kernel, stride, padding, dilation);
  TORCH_CHECK(dy.size(0) == n && dy.size(2) == oh && dy.size(3) == ow, op, ": grad_output has shape ", dy.sizes(),
              " but this convolution's output is (", n, ", ", c_out, ", ", oh, ", ", ow, ")");
  const int64_t L = oh * ow, M = c_out / G, K = c_in / G * kernel[0] * kernel[1];
  const std::vector<int64_t> weight_size{c_out, c_in / G, kernel[0], kernel[1]};

  check_settings();
  if (n > 0 && K > 0 && M > 0 && ops.grad_weight != nullptr) {  // the bias's gradient folded into the GEMM
    Tensor dw = at::empty(weight_size, input.options());
    Tensor db = at::empty({bias ? c_out : 0}, input.options());
    if (ops.grad_weight(dy, input, dw, bias ? &db : nullptr, {kernel, stride, padding, dilation, G})) return {dw, db};
  }
  Tensor grad_bias = bias ? dy.sum({0, 2, 3}) : at::empty({0}, input.options());
  // Sums over chunks accumulate in float for half types (fp32 accumulation), as the GEMM does.
  const auto acc_type = at::toOpMathType(input.scalar_type());
  const auto accumulate = [&](Tensor& dw_g, const Tensor& a, const Tensor& b) {
    acc_type == input.scalar_type() ? dw_g.addmm_(a, b) : dw_g.add_(at::mm(a, b));
  };
  if (n == 0 || K == 0 || M == 0) return {at::zeros(weight_size, input.options()), grad_bias};

  if (G == 1 && is_pointwise(kernel, stride, padding) && is_nhwc(input) && is_nhwc(dy)) {
    // dW (C_out x C_in) = dy^T (C_out x nL) @ x (nL x C_in)
    return {at::mm(pixel_rows(dy).t(), pixel_rows(input)).view(weight_size), grad_bias};
  }

  if (is_nhwc(input) && is_nhwc(dy)) {  // pixel-major: dW' (M x K) += dy^T (M x b L) @ cols (b L x K)
    const Tensor dy_all = pixel_rows(dy);
    const ChunkSchedule chunks = schedule_chunks(n, G * K, /*c_out=*/0, L, input, /*wide=*/false);
    const ChunkWorkspace space(chunks, G * K, /*c_out=*/0, L, input);
    // One partial sum per workspace slot, added up in slot order at the end.
    Tensor dw_slots = at::zeros({chunks.slots, G, M, K}, input.options().dtype(acc_type));
    chunks.for_each([&](int64_t n0, int64_t b, int64_t slot) {
      const Tensor x = input.narrow(0, n0, b);
      Tensor cols = space.pixel_columns(b, slot);
      ops.im2col(x, cols, pixel_major(x, kernel, stride, padding, dilation, G, L));
      const Tensor dy_rows = dy_all.narrow(0, n0 * L, b * L);
      for (int64_t g = 0; g < G; ++g) {
        Tensor dw_g = dw_slots[slot][g];
        accumulate(dw_g, dy_rows.narrow(1, g * M, M).t(), cols.narrow(1, g * K, K));
      }
    });
    const Tensor dw = chunks.slots == 1 ? dw_slots[0] : dw_slots.sum(0);
    // (G, M, KH, KW, C_in / G) back to the weight's (C_out, C_in / G, KH, KW)
    const Tensor by_taps = dw.view({c_out, kernel[0], kernel[1], c_in / G}).permute({0, 3, 1, 2});
    return {by_taps.to(input.scalar_type()).contiguous(), grad_bias};
  }

  const ChunkSchedule chunks = schedule_chunks(n, G * K, c_out, L, input, /*wide=*/false);
  const ChunkWorkspace space(chunks, G * K, c_out, L, input);
  // One partial sum per workspace slot, added up in slot order at the end.
  Tensor dw_slots = at::zeros({chunks.slots, G, M, K}, input.options().dtype(acc_type));
  chunks.for_each([&](int64_t n0, int64_t b, int64_t slot) {
    const Tensor x = input.narrow(0, n0, b);
    Tensor cols = space.columns(b, slot);
    ops.im2col(x, cols, channel_major(x, kernel, stride, padding, dilation, L));
    const Tensor dy_rows = space.channel_rows(dy, n0, b, slot);
    for (int64_t g = 0; g < G; ++g) {
      Tensor dw_g = dw_slots[slot][g];
      accumulate(dw_g, dy_rows.narrow(0, g * M, M), cols.narrow(0, g * K, K).t());
    }
  });
  const Tensor dw = chunks.slots == 1 ? dw_slots[0] : dw_slots.sum(0);
  return {dw.view(weight_size).to(input.scalar_type()), grad_bias};
}

Tensor im2col(const Tensor& input, IntArrayRef kernel, IntArrayRef dilation, IntArrayRef padding, IntArrayRef stride) {
  const char* op = "cifarconv::ext_im2col";
  const ColumnOps& ops = column_ops_for(input);
  const c10::OptionalDeviceGuard guard(at::device_of(input));
  TORCH_CHECK(input.dim() == 4, op, ": expected a 4-D input, got ", input.sizes());
  check_window(op, kernel, stride, padding, dilation);
  const auto [oh, ow] = output_hw(op, input.size(2), input.size(3), kernel, stride, padding, dilation);
  const int64_t rows = input.size(1) * kernel[0] * kernel[1], L = oh * ow;
  Tensor cols = at::empty({input.size(0), rows, L}, input.options());
  if (cols.numel() > 0) {
    ops.im2col(input, cols, geometry(input, kernel, stride, padding, dilation, 1, ColumnLayout::kChannelMajor,
                                     /*col_n=*/rows * L, /*col_k=*/L, /*col_l=*/1));
  }
  return cols;
}

Tensor col2im(const Tensor& input, IntArrayRef output_size, IntArrayRef kernel, IntArrayRef dilation,
              IntArrayRef padding, IntArrayRef stride) {
  const char* op = "cifarconv::ext_col2im";
  const ColumnOps& ops = column_ops_for(input);
  const c10::OptionalDeviceGuard guard(at::device_of(input));
  TORCH_CHECK(input.dim() == 3, op, ": expected 3-D columns (N, C*kH*kW, L), got ", input.sizes());
  TORCH_CHECK(output_size.size() == 2, op, ": output_size must have 2 values");
  check_window(op, kernel, stride, padding, dilation);
  const auto [oh, ow] = output_hw(op, output_size[0], output_size[1], kernel, stride, padding, dilation);
  const int64_t rows = input.size(1), L = oh * ow, taps = kernel[0] * kernel[1];
  TORCH_CHECK(rows % taps == 0 && input.size(2) == L, op, ": columns of shape ", input.sizes(),
              " do not match output_size ", output_size, " and kernel_size ", kernel, " (expected (N, C*", taps,
              ", ", L, "))");
  Tensor image = at::empty({input.size(0), rows / taps, output_size[0], output_size[1]}, input.options());
  if (image.numel() > 0) {
    const Tensor cols = input.contiguous();
    ops.col2im(cols, image, geometry(image, kernel, stride, padding, dilation, 1, ColumnLayout::kChannelMajor,
                                     /*col_n=*/rows * L, /*col_k=*/L, /*col_l=*/1));
  }
  return image;
}

}  // namespace

void register_conv_ops(torch::Library& m, c10::DeviceType device, ColumnOps ops) {
  column_ops(device) = ops;
  m.impl("ext_conv2d", TORCH_FN(conv2d));
  m.impl("ext_conv2d_grad_input", TORCH_FN(conv2d_grad_input));
  m.impl("ext_conv2d_grad_weight", TORCH_FN(conv2d_grad_weight));
  m.impl("ext_im2col", TORCH_FN(im2col));
  m.impl("ext_col2im", TORCH_FN(col2im));
}

}  // namespace cifarconv
