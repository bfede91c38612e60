// Which GEMM path a float32 CPU convolution takes, and the cache blocking for it.
//
//   CIFARCONV_CPU_GEMM=aten|generic|avx2|avx512|auto   (default auto)
//
// auto: on x86-64 the widest path the CPU supports (cpuid: AVX-512F, then AVX2 + FMA,
// then generic); elsewhere aten (at::mm on im2col chunks).  The in-process switch
// (cifarconv::cpu_gemm_select, cifarconv.backends.extension.cpu_gemm in Python) overrides
// the environment.  Asking for a path this CPU cannot run is an error, not a fallback.
#pragma once

#include "gemm.h"

namespace cifarconv {
namespace cpu_gemm {

// The kernels float32 CPU convolutions run now, or nullptr for the at::mm path.  Raises a
// c10::Error for a bad CIFARCONV_CPU_GEMM or a path this CPU lacks.
const Kernels* active_kernels();

// KC, MC, NC for a path and a C whose fixed side (the side a driver does not split into
// blocks: the output channels, say) is c_other long, from the cache sizes read at run time
// (see select.cpp), or from CIFARCONV_CPU_GEMM_BLOCKING=KC,MC,NC.
Blocking blocking_for(const Kernels& kernels, int64_t c_other);

}  // namespace cpu_gemm
}  // namespace cifarconv
