// The AVX2 + FMA path: 16 vector registers of 8 floats.  The C tile is MR x NR = 6 x 16:
// 6 rows of two 8-float vectors = 12 accumulator registers, plus the two B vectors and
// the broadcast -- 15 of the 16 registers (BLIS's Haswell kernel has the same shape).
// Compiled for AVX2 + FMA by the target attribute on each function (never -march=native);
// select.cpp runs it only where cpuid says the CPU supports both.
#if defined(__x86_64__) || defined(_M_X64)

// Short copies in the packers stay inline vector moves rather than memcpy / memset calls.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#include <immintrin.h>

#include <cstdint>

#include "gemm.h"

#define CIFARCONV_TARGET __attribute__((target("avx2,fma")))

namespace cifarconv {
namespace cpu_gemm {
namespace {

struct Avx2 {
  static constexpr int MR = 6, MR_PIXELS = 6, NR = 16, KU = 8, NV = 2;

  // C (MR x NR) (+)= A micro-panel @ B micro-panel, as in kernel_avx512.cpp: row i's
  // vector v is at c[v] + i rs_c.
  template <int ROWS>
  CIFARCONV_TARGET static void micro(int64_t kcp, const float* a, const float* b, float* const* c, int64_t rs_c,
                                     bool accumulate) {
    // C's tile is read or written only at the end: fetch its lines now, while the FMAs run.
#pragma GCC unroll 6
    for (int i = 0; i < ROWS; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(c[0] + i * rs_c), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c[1] + i * rs_c + 7), _MM_HINT_T0);
    }
    __m256 acc[ROWS][2];
#pragma GCC unroll 6
    for (int i = 0; i < ROWS; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t kb = 0; kb < kcp; kb += KU, a += ROWS * KU) {
#pragma GCC unroll 8
      for (int kk = 0; kk < KU; ++kk, b += NR) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < ROWS; ++i) {
          const __m256 ai = _mm256_broadcast_ss(a + i * KU + kk);  // broadcast A(i, k)
          acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
          acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
      }
    }
#pragma GCC unroll 6
    for (int i = 0; i < ROWS; ++i) {
      float* c0 = c[0] + i * rs_c;
      float* c1 = c[1] + i * rs_c;
      if (accumulate) {
        acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(c0));
        acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(c1));
      }
      _mm256_storeu_ps(c0, acc[i][0]);
      _mm256_storeu_ps(c1, acc[i][1]);
    }
  }

  // The FMA peak: 12 independent accumulators, no memory traffic.
  CIFARCONV_TARGET static double fma_loop(int64_t iters) {
    constexpr int kAcc = 12;
    __m256 acc[kAcc];
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
#pragma GCC unroll 12
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm256_set1_ps(float(i));
    for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
      for (int i = 0; i < kAcc; ++i) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    }
    __m256 sum = acc[0];
    for (int i = 1; i < kAcc; ++i) sum = _mm256_add_ps(sum, acc[i]);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, sum);
    volatile float sink = lanes[0] + lanes[7];
    (void)sink;
    return 2.0 * 8 * kAcc * static_cast<double>(iters);
  }
};

#include "gemm_driver.inc"

}  // namespace

extern const Kernels kAvx2 = make_kernels<Avx2>("avx2");

}  // namespace cpu_gemm
}  // namespace cifarconv

#endif
