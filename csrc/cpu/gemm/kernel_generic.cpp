// The portable path: plain C++ that any compiler and CPU run, compiled for the build's
// baseline (on x86-64, SSE2: the compiler vectorizes what it can).  The C tile is
// MR x NR = 4 x 8 floats.  It is the reference the vector paths are tested against, and
// runs where neither AVX2 nor AVX-512 is there.
// Short copies in the packers stay inline vector moves rather than memcpy / memset calls.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#include <cstdint>

#include "gemm.h"

#define CIFARCONV_TARGET

namespace cifarconv {
namespace cpu_gemm {
namespace {

struct Generic {
  static constexpr int MR = 4, MR_PIXELS = 4, NR = 8, KU = 4, NV = 1;  // a row is one block of NR

  // C (MR x NR, row i at c[0] + i rs_c) (+)= A micro-panel @ B micro-panel: for every k,
  // each A(i, k) times the row B(k, :) -- the broadcast + FMA of the vector paths, written out.
  template <int ROWS>
  static void micro(int64_t kcp, const float* a, const float* b, float* const* c, int64_t rs_c, bool accumulate) {
    float acc[ROWS][NR] = {};
    for (int64_t kb = 0; kb < kcp; kb += KU, a += ROWS * KU) {
      for (int kk = 0; kk < KU; ++kk, b += NR) {
        for (int i = 0; i < ROWS; ++i) {
          const float ai = a[i * KU + kk];
          for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
        }
      }
    }
    for (int i = 0; i < ROWS; ++i) {
      float* ci = c[0] + i * rs_c;
      for (int j = 0; j < NR; ++j) ci[j] = accumulate ? ci[j] + acc[i][j] : acc[i][j];
    }
  }

  // The peak of this path: 8 independent rows of NR multiply-adds, no memory traffic.
  static double fma_loop(int64_t iters) {
    constexpr int kAcc = 8;
    float acc[kAcc][NR];
    for (int i = 0; i < kAcc; ++i) {
      for (int j = 0; j < NR; ++j) acc[i][j] = float(i + j);
    }
    for (int64_t it = 0; it < iters; ++it) {
      for (int i = 0; i < kAcc; ++i) {
        for (int j = 0; j < NR; ++j) acc[i][j] = acc[i][j] * 0.999999f + 1e-7f;
      }
    }
    float sum = 0;
    for (int i = 0; i < kAcc; ++i) {
      for (int j = 0; j < NR; ++j) sum += acc[i][j];
    }
    volatile float sink = sum;
    (void)sink;
    return 2.0 * NR * kAcc * static_cast<double>(iters);
  }
};

#include "gemm_driver.inc"

}  // namespace

extern const Kernels kGeneric = make_kernels<Generic>("generic");

}  // namespace cpu_gemm
}  // namespace cifarconv
