// The AVX-512F path: 32 vector registers of 16 floats.  The C tile is ROWS x NR, NR = 32:
// each row two 16-float vectors, so ROWS x 2 accumulator registers, plus the two B vectors
// of the current k and the broadcast A value.  ROWS is MR = 8 where the rows are channels
// (19 registers; 8 divides every usual channel count) and MR_PIXELS = 14 where they are
// pixels (31 registers: per k, 28 FMAs against 2 vector loads and 14 broadcasts).
// Compiled for AVX-512F by the target attribute on each function (never -march=native);
// select.cpp runs it only where cpuid says the CPU and the OS support AVX-512F.
#if defined(__x86_64__) || defined(_M_X64)

// Short copies in the packers stay inline vector moves rather than memcpy / memset calls.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#include <immintrin.h>

#include <cstdint>

#include "gemm.h"

#define CIFARCONV_TARGET __attribute__((target("avx512f,fma")))

namespace cifarconv {
namespace cpu_gemm {
namespace {

struct Avx512 {
  static constexpr int MR = 8, MR_PIXELS = 14, NR = 32, KU = 8, NV = 2;

  // C (ROWS x NR) (+)= A micro-panel (ROWS x kcp, [kcp / KU][ROWS][KU]) @ B micro-panel
  // (kcp x NR, [kcp][NR]); kcp is a multiple of KU.  Row i's vector v is at c[v] + i rs_c.
  template <int ROWS>
  CIFARCONV_TARGET static void micro(int64_t kcp, const float* a, const float* b, float* const* c, int64_t rs_c,
                                     bool accumulate) {
    // C's tile is read or written only at the end: fetch its lines now, while the FMAs run.
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(c[0] + i * rs_c), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c[1] + i * rs_c + 15), _MM_HINT_T0);
    }
    __m512 acc[ROWS][2];
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t kb = 0; kb < kcp; kb += KU, a += ROWS * KU) {
#pragma GCC unroll 16
      for (int kk = 0; kk < KU; ++kk, b += NR) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 16
        for (int i = 0; i < ROWS; ++i) {
          const __m512 ai = _mm512_set1_ps(a[i * KU + kk]);  // broadcast A(i, k)
          acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
          acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
      }
    }
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
      float* c0 = c[0] + i * rs_c;
      float* c1 = c[1] + i * rs_c;
      if (accumulate) {
        acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_loadu_ps(c0));
        acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_loadu_ps(c1));
      }
      _mm512_storeu_ps(c0, acc[i][0]);
      _mm512_storeu_ps(c1, acc[i][1]);
    }
  }

  // The FMA peak: 24 independent accumulators (enough to cover the FMA latency on two
  // FMA ports), no memory traffic.  Returns the floating-point operations done.
  CIFARCONV_TARGET static double fma_loop(int64_t iters) {
    constexpr int kAcc = 24;
    __m512 acc[kAcc];
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
#pragma GCC unroll 24
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_set1_ps(float(i));
    for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
      for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    }
    __m512 sum = acc[0];
    for (int i = 1; i < kAcc; ++i) sum = _mm512_add_ps(sum, acc[i]);
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, sum);
    volatile float sink = lanes[0] + lanes[15];
    (void)sink;
    return 2.0 * 16 * kAcc * static_cast<double>(iters);
  }
};

#include "gemm_driver.inc"

}  // namespace

extern const Kernels kAvx512 = make_kernels<Avx512>("avx512");

}  // namespace cpu_gemm
}  // namespace cifarconv

#endif
