// The three conv passes as one GEMM each, on cifarconv's own packed GEMM (gemm/), with
// im2col done while packing: no column matrix is ever written.
//
// Shapes per group (G groups, M = C_out / G, Cg = C_in / G, P = N OH OW output pixels):
//
//   forward      y  (M x P)  = W (M x Cg KH KW)       @ im2col(x)   (Cg KH KW x P)   + bias
//   grad input   dx (Cg x P') = W' (Cg x M |taps|)    @ im2col(dy)  (M |taps| x P')  per stride phase
//   grad weight  dW (M x Cg KH KW + 1) = dy (M x P)   @ [im2col(x)^T | 1]            the sum over P
//
// The memory format picks which operand is the micro-kernel's vector direction (its NR
// columns), so that C is stored with vector stores:
//   NCHW: pixels are contiguous -> C (channels x pixels): the weight is A (packed once per
//         call into MR-row panels), the image B (NR pixels a panel);
//   NHWC: channels are contiguous -> C (pixels x channels): the image is A (MR pixels a
//         panel), the weight B (packed once per call into NR-column panels).
//
// Grad input is the convolution of dy with the weight turned around, done without zero
// insertion: with stride s, the input pixels y split into s "phases" r = (y + PH) mod s.
// Pixel y = q s + r - PH is read by kernel tap i from output row oy = q - e exactly when
// i DH = e s + r for an integer e >= 0, so each phase is a stride-1 convolution of dy
// with the taps i DH = r (mod s) at offsets -e (and likewise in x).  A phase without taps
// is zero.
//
// Threads split the pixels (at::parallel_for, as many equal ranges as threads), each with
// its own packing buffers; the packed weight is shared -- or, with more channels than
// pixels, the channels.  Grad weight, whose pixels are the sum, either gives each thread
// its pixels and a partial dW (added up at the end), or, when dW is large against the
// pixels (small images), each thread its own columns of dW.

#include "conv_gemm_cpu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "gemm/gemm.h"
#include "gemm/select.h"

namespace cifarconv {
namespace {

using at::Tensor;
using cpu_gemm::Blocking;
using cpu_gemm::DenseOperand;
using cpu_gemm::ImageOperand;
using cpu_gemm::Kernels;
using cpu_gemm::TileStore;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Below this many multiply-adds a pass runs on one thread: starting threads costs more.
constexpr double kParallelWork = 1 << 19;

bool is_nhwc(const Tensor& t) { return t.permute({0, 2, 3, 1}).is_contiguous(); }

// How many following entries continue each offset contiguously (DenseOperand's runs).
std::vector<int64_t> runs_of(const std::vector<int64_t>& off) {
  std::vector<int64_t> run(off.size(), 1);
  for (int64_t i = static_cast<int64_t>(off.size()) - 2; i >= 0; --i) {
    if (off[i + 1] == off[i] + 1) run[i] = run[i + 1] + 1;
  }
  return run;
}

// A dense operand's offset tables.
struct Dense {
  std::vector<int64_t> row_off, k_off, run_row, run_k;
  Dense(std::vector<int64_t> rows, std::vector<int64_t> ks)
      : row_off(std::move(rows)), k_off(std::move(ks)), run_row(runs_of(row_off)), run_k(runs_of(k_off)) {}
  DenseOperand at(const float* data) const { return {data, row_off.data(), k_off.data(), run_row.data(), run_k.data()}; }
};

// 0, step, 2 step, ...: offsets of `count` channels (or taps).
std::vector<int64_t> strided(int64_t count, int64_t step) {
  std::vector<int64_t> v(count);
  for (int64_t i = 0; i < count; ++i) v[i] = i * step;
  return v;
}

// The offsets in `t` (N, C, H, W) of the pixels of a grid: pixel p = (n * rows + a) * cols + b
// is at image row a * step_y + y0 and column b * step_x + x0.
std::vector<int64_t> pixel_offsets(const Tensor& t, int64_t rows, int64_t cols, int64_t step_y, int64_t y0,
                                   int64_t step_x, int64_t x0) {
  const int64_t n = t.size(0);
  std::vector<int64_t> off(n * rows * cols);
  int64_t p = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t a = 0; a < rows; ++a) {
      for (int64_t b = 0; b < cols; ++b) {
        off[p++] = i * t.stride(0) + (a * step_y + y0) * t.stride(2) + (b * step_x + x0) * t.stride(3);
      }
    }
  }
  return off;
}

// The k index of a weight's taps (kernel rows `ti`, columns `tj`) and `channels` channels
// that are `channel_step` apart in it: (c, ti, tj) for NCHW operands, (ti, tj, c) for NHWC.
std::vector<int64_t> weight_k_offsets(const Tensor& weight, const std::vector<int64_t>& ti,
                                      const std::vector<int64_t>& tj, int64_t channels, int64_t channel_step,
                                      bool pixel_major) {
  std::vector<int64_t> off;
  off.reserve(channels * ti.size() * tj.size());
  const auto tap = [&](int64_t i, int64_t j) { return i * weight.stride(2) + j * weight.stride(3); };
  if (pixel_major) {
    for (int64_t i : ti) {
      for (int64_t j : tj) {
        for (int64_t c = 0; c < channels; ++c) off.push_back(c * channel_step + tap(i, j));
      }
    }
  } else {
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t i : ti) {
        for (int64_t j : tj) off.push_back(c * channel_step + tap(i, j));
      }
    }
  }
  return off;
}

// An image (one group's channels from `c0` on) read through taps over a pixel grid.
ImageOperand image_operand(const Tensor& t, int64_t c0, int64_t channels, int64_t grid_h, int64_t grid_w,
                           int64_t step_h, int64_t step_w, int64_t origin_h, int64_t origin_w,
                           const std::vector<int64_t>& tap_h, const std::vector<int64_t>& tap_w, bool pixel_major) {
  ImageOperand im;
  im.data = t.const_data_ptr<float>() + c0 * t.stride(1);
  im.stride_n = t.stride(0), im.stride_c = t.stride(1), im.stride_h = t.stride(2), im.stride_w = t.stride(3);
  im.h = t.size(2), im.w = t.size(3);
  im.grid_h = grid_h, im.grid_w = grid_w;
  im.step_h = step_h, im.step_w = step_w, im.origin_h = origin_h, im.origin_w = origin_w;
  im.channels = channels;
  im.taps_h = static_cast<int64_t>(tap_h.size()), im.taps_w = static_cast<int64_t>(tap_w.size());
  im.tap_h = tap_h.data(), im.tap_w = tap_w.data();
  const auto [h_lo, h_hi] = std::minmax_element(tap_h.begin(), tap_h.end());
  const auto [w_lo, w_hi] = std::minmax_element(tap_w.begin(), tap_w.end());
  im.reach_h[0] = *h_lo, im.reach_h[1] = *h_hi, im.reach_w[0] = *w_lo, im.reach_w[1] = *w_hi;
  im.pixel_major = pixel_major;
  im.ones_column = false;
  return im;
}

// This thread's packing buffers, kept between calls (64-byte aligned, grown as needed).
float* thread_workspace(int64_t floats) {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<float, Free> buffer;
  thread_local int64_t capacity = 0;
  if (capacity < floats) {
    const size_t bytes = static_cast<size_t>(round_up(floats * static_cast<int64_t>(sizeof(float)), 64));
    buffer.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    TORCH_CHECK(buffer != nullptr, "cifarconv: could not allocate ", bytes, " bytes of GEMM workspace");
    capacity = floats;
  }
  return buffer.get();
}

// body(begin, end) on [0, units) cut into one equal range per thread (one range in all
// when the work is small).
template <class Body>
void split_between_threads(int64_t units, double work, const Body& body) {
  const int64_t threads = work < kParallelWork ? 1 : std::min<int64_t>(at::get_num_threads(), units);
  at::parallel_for(0, units, ceil_div(units, std::max<int64_t>(threads, 1)), body);
}

// A weight packed for every group: A (MR-row panels) or B (NR-column panels) of
// `rows` x `k` per group.
struct PackedWeight {
  Tensor buffer;
  int64_t per_group;
  const float* group(int64_t g) const { return buffer.const_data_ptr<float>() + g * per_group; }
};

PackedWeight pack_weight(const Kernels& kernels, const Blocking& blk, const Tensor& weight, int64_t group_step,
                         const Dense& tables, int64_t rows, int64_t k, int64_t groups, bool as_a) {
  const int64_t width = as_a ? kernels.mr : kernels.nr, panels = ceil_div(rows, width);
  PackedWeight packed{at::empty({groups * panels * width * round_up(k, kernels.ku)}, weight.options()), 0};
  packed.per_group = panels * width * round_up(k, kernels.ku);
  float* out = packed.buffer.mutable_data_ptr<float>();
  const float* w = weight.const_data_ptr<float>();
  split_between_threads(groups * panels, double(groups) * rows * k * 8, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t g = u / panels, panel = u % panels;
      const DenseOperand op = tables.at(w + g * group_step);
      (as_a ? kernels.pack_a : kernels.pack_b)(op, rows, k, blk, panel, panel + 1, out + g * packed.per_group);
    }
  });
  return packed;
}

// One implicit-GEMM convolution: C = weight (rows x k) with image operand (k x pixels), into
// `out` for every group: the forward pass, or one stride phase of grad input.
struct ImplicitConv {
  const Tensor* image;                 // x, or dy
  const Tensor* weight;
  int64_t groups, rows, k;             // per group: C's channel rows (M, or Cg), the sum's length
  int64_t image_channels;              // per group, in the image
  int64_t grid_h, grid_w, step_h, step_w, origin_h, origin_w;
  std::vector<int64_t> tap_h, tap_w;   // the image's tap offsets
  std::vector<int64_t> taps_i, taps_j; // the weight's kernel rows / columns, in the same order
  int64_t weight_row_step, weight_channel_step, weight_group_step;
  Tensor* out;                         // y, or dx, or a phase of dx: its pixels are the grid
  const float* bias;                   // per row of each group, or null
};

// The GEMM in one orientation: pixel_rows, C (pixels x channels), or C (channels x pixels).
// Either reads and writes any strides; the orientation decides only which are vector loads
// and stores.
void run_oriented(const Kernels& kernels, const ImplicitConv& cv, bool pixel_rows) {
  TORCH_INTERNAL_ASSERT(cv.out->size(2) == cv.grid_h && cv.out->size(3) == cv.grid_w);
  const Blocking blk = cpu_gemm::blocking_for(kernels, cv.rows);
  const std::vector<int64_t> out_pixels = pixel_offsets(*cv.out, cv.grid_h, cv.grid_w, 1, 0, 1, 0);
  const int64_t pixels = static_cast<int64_t>(out_pixels.size());
  const Dense weight_tables(strided(cv.rows, cv.weight_row_step),
                            weight_k_offsets(*cv.weight, cv.taps_i, cv.taps_j, cv.image_channels,
                                             cv.weight_channel_step, pixel_rows));
  const PackedWeight packed = pack_weight(kernels, blk, *cv.weight, cv.weight_group_step, weight_tables, cv.rows,
                                          cv.k, cv.groups, /*as_a=*/!pixel_rows);
  const std::vector<int64_t> channel_off = strided(cv.rows, cv.out->stride(1));
  float* out = cv.out->mutable_data_ptr<float>();
  // Threads split the pixels, or, when there are fewer pixels than channels (small images),
  // the channels: each thread then reads only its part of the packed weight, which is then
  // the larger operand.
  const int64_t panels = ceil_div(cv.rows, pixel_rows ? kernels.nr : kernels.mr);
  const bool split_channels = cv.rows > pixels && panels > 1;
  const int64_t unit = pixel_rows ? kernels.mr_pixels : kernels.nr;
  const double work = double(cv.groups) * cv.rows * cv.k * pixels;
  split_between_threads(split_channels ? panels : ceil_div(pixels, unit), work, [&](int64_t begin, int64_t end) {
    float* workspace = thread_workspace(cpu_gemm::workspace_floats(blk));
    const int64_t panel_begin = split_channels ? begin : 0, panel_end = split_channels ? end : panels;
    const int64_t p_begin = split_channels ? 0 : begin * unit;
    const int64_t p_end = split_channels ? pixels : std::min(end * unit, pixels);
    for (int64_t g = 0; g < cv.groups; ++g) {
      const ImageOperand im = image_operand(*cv.image, g * cv.image_channels, cv.image_channels, cv.grid_h,
                                            cv.grid_w, cv.step_h, cv.step_w, cv.origin_h, cv.origin_w, cv.tap_h,
                                            cv.tap_w, pixel_rows);
      TileStore c;
      c.data = out + g * cv.rows * cv.out->stride(1);
      c.bias = cv.bias != nullptr ? cv.bias + g * cv.rows : nullptr;
      c.bias_on_rows = !pixel_rows;
      if (pixel_rows) {  // C (pixels x channels): pixel rows, channel columns
        c.row_off = out_pixels.data(), c.col_off = channel_off.data();
        kernels.gemm_pixel_rows(im, packed.group(g), c, cv.rows, cv.k, panel_begin, panel_end, p_begin, p_end, blk,
                                workspace);
      } else {  // C (channels x pixels)
        c.row_off = channel_off.data(), c.col_off = out_pixels.data();
        kernels.gemm_pixel_columns(packed.group(g), im, c, cv.rows, cv.k, panel_begin, panel_end, p_begin, p_end,
                                   blk, workspace);
      }
    }
  });
}

void run_implicit_conv(const Kernels& kernels, const ImplicitConv& cv) {
  const bool nhwc = is_nhwc(*cv.out) && is_nhwc(*cv.image);
  if (!nhwc || cv.rows > kernels.nr / 2) {
    run_oriented(kernels, cv, /*pixel_rows=*/nhwc);
    return;
  }
  // NHWC with few output channels (a first layer's grad input, say): most of each NR-wide
  // vector would be wasted, so run the NCHW orientation, on NCHW copies (small ones: few
  // channels; with one channel, NCHW and NHWC are the same tensor and nothing is copied).
  const Tensor image = cv.image->contiguous();
  const bool copy_out = !cv.out->is_contiguous();
  Tensor out = copy_out ? at::empty(cv.out->sizes(), cv.out->options()) : *cv.out;
  ImplicitConv nchw = cv;
  nchw.image = &image, nchw.out = &out;
  run_oriented(kernels, nchw, /*pixel_rows=*/false);
  if (copy_out) cv.out->copy_(out);
}

const Kernels* kernels_for(const Tensor& t) {
  const Kernels* kernels = cpu_gemm::active_kernels();  // checks CIFARCONV_CPU_GEMM for every dtype
  return t.scalar_type() == at::kFloat ? kernels : nullptr;
}

}  // namespace

bool conv_forward_cpu(const Tensor& input, const Tensor& weight, const Tensor* bias, Tensor& out,
                      const ConvWindow& win) {
  const Kernels* kernels = kernels_for(input);
  if (kernels == nullptr) return false;
  const int64_t G = win.groups, c_out = weight.size(0), M = c_out / G, Cg = input.size(1) / G;
  const int64_t kh = win.kernel[0], kw = win.kernel[1], oh = out.size(2), ow = out.size(3);
  ImplicitConv cv;
  cv.image = &input, cv.weight = &weight;
  cv.groups = G, cv.rows = M, cv.k = Cg * kh * kw, cv.image_channels = Cg;
  cv.grid_h = oh, cv.grid_w = ow;
  cv.step_h = win.stride[0], cv.step_w = win.stride[1], cv.origin_h = -win.padding[0], cv.origin_w = -win.padding[1];
  cv.tap_h = strided(kh, win.dilation[0]), cv.tap_w = strided(kw, win.dilation[1]);
  cv.taps_i = strided(kh, 1), cv.taps_j = strided(kw, 1);
  // weight (C_out, Cg, KH, KW): C's rows are output channels, the image's channels its dim 1
  cv.weight_row_step = weight.stride(0), cv.weight_channel_step = weight.stride(1);
  cv.weight_group_step = M * weight.stride(0);
  cv.out = &out;
  const Tensor b = bias != nullptr ? bias->contiguous() : Tensor();
  cv.bias = bias != nullptr ? b.const_data_ptr<float>() : nullptr;
  run_implicit_conv(*kernels, cv);
  return true;
}

bool conv_grad_input_cpu(const Tensor& dy, const Tensor& weight, Tensor& dx, const ConvWindow& win) {
  const Kernels* kernels = kernels_for(dy);
  if (kernels == nullptr) return false;
  const int64_t G = win.groups, M = weight.size(0) / G, Cg = weight.size(1);
  const int64_t H = dx.size(2), W = dx.size(3);
  const int64_t s[2] = {win.stride[0], win.stride[1]}, pad[2] = {win.padding[0], win.padding[1]};
  const int64_t dil[2] = {win.dilation[0], win.dilation[1]}, ksz[2] = {win.kernel[0], win.kernel[1]};
  const int64_t size[2] = {H, W};

  // Per dimension and phase r: the kernel taps i with i DH = e s + r, their e, and the
  // grid of input positions q s + r - PH (q from q_lo) that lie inside the image.
  struct Phase {
    std::vector<int64_t> taps, offsets;  // i, and -e: the tap reads dy at q - e
    int64_t q_lo, count;
  };
  std::vector<Phase> phases[2];
  bool some_phase_empty = false;
  for (int d = 0; d < 2; ++d) {
    for (int64_t r = 0; r < s[d]; ++r) {
      Phase ph;
      for (int64_t i = 0; i < ksz[d]; ++i) {
        if ((i * dil[d]) % s[d] == r) ph.taps.push_back(i), ph.offsets.push_back(-((i * dil[d] - r) / s[d]));
      }
      // q s + r - PH >= 0  and  <= size - 1
      const int64_t lo_num = pad[d] - r, hi_num = size[d] - 1 + pad[d] - r;
      ph.q_lo = lo_num > 0 ? ceil_div(lo_num, s[d]) : -((-lo_num) / s[d]);
      const int64_t q_hi = hi_num >= 0 ? hi_num / s[d] : -ceil_div(-hi_num, s[d]);
      ph.count = std::max<int64_t>(q_hi - ph.q_lo + 1, 0);
      some_phase_empty |= ph.taps.empty() && ph.count > 0;
      phases[d].push_back(std::move(ph));
    }
  }
  if (some_phase_empty) dx.zero_();  // pixels no tap reads get no gradient

  for (int64_t ry = 0; ry < s[0]; ++ry) {
    for (int64_t rx = 0; rx < s[1]; ++rx) {
      const Phase &py = phases[0][ry], &px = phases[1][rx];
      if (py.taps.empty() || px.taps.empty() || py.count == 0 || px.count == 0) continue;
      ImplicitConv cv;
      cv.image = &dy, cv.weight = &weight;
      cv.groups = G, cv.rows = Cg, cv.image_channels = M;
      cv.k = M * static_cast<int64_t>(py.taps.size() * px.taps.size());
      cv.grid_h = py.count, cv.grid_w = px.count;
      cv.step_h = 1, cv.step_w = 1, cv.origin_h = py.q_lo, cv.origin_w = px.q_lo;
      cv.tap_h = py.offsets, cv.tap_w = px.offsets;
      cv.taps_i = py.taps, cv.taps_j = px.taps;
      // weight (C_out, Cg, KH, KW): C's rows are input channels (dim 1), dy's channels dim 0
      cv.weight_row_step = weight.stride(1), cv.weight_channel_step = weight.stride(0);
      cv.weight_group_step = M * weight.stride(0);
      cv.bias = nullptr;
      // grid pixel (a, b) is dx pixel (a s + y0, b s + x0)
      const int64_t y0 = py.q_lo * s[0] + ry - pad[0], x0 = px.q_lo * s[1] + rx - pad[1];
      if (s[0] == 1 && s[1] == 1) {  // one phase: the grid is dx (y0 = x0 = 0)
        cv.out = &dx;
        run_implicit_conv(*kernels, cv);
        continue;
      }
      // A phase's pixels are s apart in dx: the GEMM writes them densely into a tensor of
      // their own (full-width vector stores), which is then copied into its place in dx.
      Tensor phase = at::empty({dx.size(0), dx.size(1), py.count, px.count},
                               dx.options().memory_format(dx.suggest_memory_format()));
      cv.out = &phase;
      run_implicit_conv(*kernels, cv);
      dx.slice(2, y0, y0 + (py.count - 1) * s[0] + 1, s[0]).slice(3, x0, x0 + (px.count - 1) * s[1] + 1, s[1])
          .copy_(phase);
    }
  }
  return true;
}

bool conv_grad_weight_cpu(const Tensor& dy, const Tensor& input, Tensor& dw, Tensor* db, const ConvWindow& win) {
  const Kernels* kernels = kernels_for(input);
  if (kernels == nullptr) return false;
  const Kernels& K = *kernels;
  const int64_t G = win.groups, c_out = dy.size(1), M = c_out / G, Cg = input.size(1) / G;
  const Blocking blk = cpu_gemm::blocking_for(K, M);
  const int64_t kh = win.kernel[0], kw = win.kernel[1], oh = dy.size(2), ow = dy.size(3);
  const int64_t k_taps = Cg * kh * kw, cols = k_taps + (db != nullptr ? 1 : 0);
  const int64_t pixels = dy.size(0) * oh * ow;

  // x with its channels contiguous, so that a pixel's tap is a run of channels (the
  // pixel-major im2col rows that B is packed from); dy is read in its own layout.
  const Tensor x = input.contiguous(at::MemoryFormat::ChannelsLast);
  const std::vector<int64_t> tap_h = strided(kh, win.dilation[0]), tap_w = strided(kw, win.dilation[1]);
  const Dense dy_tables(strided(M, dy.stride(1)), pixel_offsets(dy, oh, ow, 1, 0, 1, 0));

  // Threads split the pixels (each its own partial dW, added up after) or, when dW is large
  // against the pixels, the columns of dW (no partial sums, but each thread packs all of dy).
  const double work = double(G) * M * cols * pixels;
  const int64_t threads = work < kParallelWork ? 1 : at::get_num_threads();
  const bool split_pixels = threads > 1 && 3 * cols < pixels;
  const int64_t partials = split_pixels ? threads : 1;
  Tensor sums = at::empty({partials, G, M, cols}, input.options());
  float* sum = sums.mutable_data_ptr<float>();
  const std::vector<int64_t> row_off = strided(M, cols), col_off = strided(cols, 1);

  const auto run = [&](int64_t part, int64_t g, int64_t n_begin, int64_t n_end, int64_t p_begin, int64_t p_end,
                       float* workspace) {
    ImageOperand im = image_operand(x, g * Cg, Cg, oh, ow, win.stride[0], win.stride[1], -win.padding[0],
                                    -win.padding[1], tap_h, tap_w, /*pixel_major=*/true);
    im.ones_column = db != nullptr;
    const TileStore c{sum + (part * G + g) * M * cols, row_off.data(), col_off.data(), nullptr, false};
    K.gemm_sum_pixels(dy_tables.at(dy.const_data_ptr<float>() + g * M * dy.stride(1)), im, c, M, n_begin, n_end,
                      p_begin, p_end, blk, workspace);
  };
  if (split_pixels) {
    at::parallel_for(0, partials, 1, [&](int64_t begin, int64_t end) {
      float* workspace = thread_workspace(cpu_gemm::workspace_floats(blk));
      for (int64_t part = begin; part < end; ++part) {
        const int64_t p_begin = pixels * part / partials, p_end = pixels * (part + 1) / partials;
        for (int64_t g = 0; g < G; ++g) run(part, g, 0, cols, p_begin, p_end, workspace);
      }
    });
  } else {
    const int64_t units = ceil_div(cols, K.nr);
    split_between_threads(units, work, [&](int64_t begin, int64_t end) {
      float* workspace = thread_workspace(cpu_gemm::workspace_floats(blk));
      for (int64_t g = 0; g < G; ++g) run(0, g, begin * K.nr, std::min(end * K.nr, cols), 0, pixels, workspace);
    });
  }
  const Tensor total = partials == 1 ? sums[0] : sums.sum(0);  // (G, M, cols)
  // dW's columns are (i, j, c) per group: back to (C_out, Cg, KH, KW)
  dw.copy_(total.narrow(2, 0, k_taps).reshape({c_out, kh, kw, Cg}).permute({0, 3, 1, 2}));
  if (db != nullptr) db->copy_(total.select(2, k_taps).reshape({c_out}));
  return true;
}

}  // namespace cifarconv
