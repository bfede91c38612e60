// How conv2d.cpp's loops cut a batch into chunks of images, in two separate jobs:
//
//   ChunkSchedule  -- how many images a chunk holds, and whether the chunks run one after
//                     another or in parallel on the CPU's threads (one workspace slot each);
//   ChunkWorkspace -- the buffers of one chunk per slot, and their views as GEMM operands.
//
// A chunk of b images has (G K x b L) column entries and, for NCHW tensors, one
// (C_out x b L) operand (the forward's output, or dy for backward; NHWC ones are GEMM
// operands as they are).  Chunks are as large as fit CIFARCONV_WORKSPACE_MB, so memory
// stays bounded whatever the batch.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <optional>

namespace cifarconv {

// CIFARCONV_WORKSPACE_MB in bytes, when it is set: the workspace chunks are sized to.
inline std::optional<double> user_workspace_bytes() {
  const char* env = std::getenv("CIFARCONV_WORKSPACE_MB");
  if (env == nullptr) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const double megabytes = std::strtod(env, &end);
  TORCH_CHECK(end != env && *end == '\0' && errno == 0 && megabytes >= 0, "CIFARCONV_WORKSPACE_MB must be a ",
              "non-negative number of megabytes, got '", env, "'");
  return megabytes * 1048576.0;
}

// The default workspace.  CPU: small, so that a chunk's columns stay in its thread's L2
// cache; GPU: large GEMMs, bounded memory (the CPU figures behind it are in the README).
inline double default_workspace_bytes(const at::Device& device) {
  return (device.is_cpu() ? 1.0 : 256.0) * 1048576.0;
}

struct ChunkSchedule {
  // Below this many column entries in all, starting threads costs more than it saves.
  static constexpr int64_t kParallelColumns = 1 << 16;
  // On CPU the forward and grad-input GEMMs run better with at least this many output
  // pixels per chunk, even past the default workspace (ResNet-18's 8x8 and 4x4 layers fit
  // only 64 and 48 pixels in 1 MB).  Grad weight, whose GEMM sums over the pixels, does
  // not, and keeps the workspace bound alone.
  static constexpr int64_t kWideGemmPixels = 256;

  int64_t n, images, chunks, slots;

  // n images of `bytes_per_image` workspace and L output pixels each.  wide: the chunk's
  // GEMM has its pixels as a free dimension (forward, grad input).  columns_per_image:
  // the column entries of one image, which decide whether threads pay off.
  //
  // On CPU, when there are at least as many images as threads, the chunks run in
  // parallel, each thread with its own workspace slot and single-threaded GEMMs: every
  // thread's columns stay in its own cache, and a pass is one parallel region instead of
  // two per chunk (which also keeps it fast when another process competes for the
  // cores).  Otherwise (small work, or a GPU) chunk after chunk, each GEMM on every thread.
  ChunkSchedule(int64_t n, int64_t bytes_per_image, int64_t L, int64_t columns_per_image, const at::Device& device,
                bool wide)
      : n(n), images(fitting_images(n, bytes_per_image, L, device, wide)), slots(1) {
    const int64_t threads = at::get_num_threads();
    if (device.is_cpu() && threads > 1 && !at::in_parallel_region() && n >= threads &&
        n * columns_per_image >= kParallelColumns) {
      // Every thread gets the same number of chunks, and the chunks about the same number of images.
      const int64_t chunks_per_thread = (n + threads * images - 1) / (threads * images);
      images = (n + threads * chunks_per_thread - 1) / (threads * chunks_per_thread);
      slots = threads;
    }
    chunks = (n + images - 1) / images;
  }

  // Calls body(n0, b, slot) for every chunk of b images starting at image n0.
  template <typename Body>
  void for_each(const Body& body) const {
    const auto run = [&](int64_t first, int64_t last, int64_t slot) {
      for (int64_t chunk = first; chunk < last; ++chunk) {
        const int64_t n0 = chunk * images;
        body(n0, std::min(images, n - n0), slot);
      }
    };
    if (slots == 1) return run(0, chunks, 0);
    at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
      // Worker threads do not inherit the caller's dispatch state: stay below autograd.
      const at::AutoDispatchBelowADInplaceOrView below_autograd;
      run(first, last, at::get_thread_num());
    });
  }

 private:
  // As many images as fit the workspace, at least one, and on CPU by default (no
  // CIFARCONV_WORKSPACE_MB) at least kWideGemmPixels output pixels for a wide GEMM.
  static int64_t fitting_images(int64_t n, int64_t bytes_per_image, int64_t L, const at::Device& device, bool wide) {
    const std::optional<double> user_bytes = user_workspace_bytes();
    const double images = user_bytes.value_or(default_workspace_bytes(device)) /
                          static_cast<double>(std::max<int64_t>(bytes_per_image, 1));
    const int64_t min_pixels = wide && device.is_cpu() && !user_bytes ? kWideGemmPixels : 1;
    const int64_t min_images = (min_pixels + L - 1) / std::max<int64_t>(L, 1);
    const int64_t fit = static_cast<int64_t>(std::min(images, 1e15));
    return std::clamp<int64_t>(std::max(fit, min_images), 1, std::max<int64_t>(n, 1));
  }
};

struct ChunkWorkspace {
  int64_t col_rows, c_out, L;
  at::Tensor col_space, row_space;

  // col_rows: the column matrix's G K rows.  c_out: the rows of the (C_out x b L)
  // operand, 0 when the tensors are NHWC.
  ChunkWorkspace(const ChunkSchedule& schedule, int64_t col_rows, int64_t c_out, int64_t L, const at::Tensor& like)
      : col_rows(col_rows),
        c_out(c_out),
        L(L),
        col_space(at::empty({schedule.slots, col_rows * schedule.images * L}, like.options())),
        row_space(at::empty({schedule.slots, c_out * schedule.images * L}, like.options())) {}

  // Bytes of workspace per image, what ChunkSchedule sizes chunks by.
  static int64_t bytes_per_image(int64_t col_rows, int64_t c_out, int64_t L, const at::Tensor& like) {
    return (col_rows + c_out) * L * like.element_size();
  }

  // Channel-major columns of b images, (G K x b L).
  at::Tensor columns(int64_t b, int64_t slot) const {
    return col_space[slot].narrow(0, 0, col_rows * b * L).view({col_rows, b * L});
  }
  // Pixel-major columns of b images, (b L x G K).
  at::Tensor pixel_columns(int64_t b, int64_t slot) const {
    return col_space[slot].narrow(0, 0, col_rows * b * L).view({b * L, col_rows});
  }
  at::Tensor rows(int64_t b, int64_t slot) const {
    return row_space[slot].narrow(0, 0, c_out * b * L).view({c_out, b * L});
  }

  // dy for images [n0, n0 + b) as the (C_out x b L) GEMM operand: a view of dy when
  // that is one NCHW image, else a copy into the workspace.
  at::Tensor channel_rows(const at::Tensor& dy, int64_t n0, int64_t b, int64_t slot) const {
    if (b == 1 && dy[n0].is_contiguous()) return dy[n0].view({c_out, L});
    at::Tensor r = rows(b, slot);
    r.view({c_out, b, dy.size(2), dy.size(3)}).copy_(dy.narrow(0, n0, b).transpose(0, 1));
    return r;
  }
};

}  // namespace cifarconv
