// The GEMM path of float32 CPU convolutions (select.h): cpuid, CIFARCONV_CPU_GEMM and the
// in-process switch; cache sizes and blocking; the FMA peak; and the torch ops that let
// Python read and switch all of it (cifarconv::cpu_gemm_*).
#include "select.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace cifarconv {
namespace cpu_gemm {
namespace {

enum class Path : int { kAten = 0, kGeneric, kAvx2, kAvx512, kAuto };
constexpr const char* kNames[] = {"aten", "generic", "avx2", "avx512", "auto"};
constexpr const char* kChoices = "aten, generic, avx2, avx512 or auto";

std::optional<Path> parse(const std::string& name) {
  for (int i = 0; i <= static_cast<int>(Path::kAuto); ++i) {
    if (name == kNames[i]) return static_cast<Path>(i);
  }
  return std::nullopt;
}

// What the CPU (and the OS, which must save the wider registers) supports.
bool cpu_supports(Path path) {
#if defined(__x86_64__) || defined(_M_X64)
  switch (path) {
    case Path::kAvx512:
      return __builtin_cpu_supports("avx512f");
    case Path::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default:
      return true;
  }
#else
  return path == Path::kAten || path == Path::kGeneric || path == Path::kAuto;
#endif
}

std::vector<std::string> supported_paths() {
  std::vector<std::string> names;
  for (Path p : {Path::kAten, Path::kGeneric, Path::kAvx2, Path::kAvx512}) {
    if (cpu_supports(p)) names.emplace_back(kNames[static_cast<int>(p)]);
  }
  return names;
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

Path resolve_auto() {
#if defined(__x86_64__) || defined(_M_X64)
  if (cpu_supports(Path::kAvx512)) return Path::kAvx512;
  if (cpu_supports(Path::kAvx2)) return Path::kAvx2;
  return Path::kGeneric;
#else
  return Path::kAten;
#endif
}

// A path by name, checked: known, and runnable on this CPU.  `where` names the source.
Path checked(const std::string& name, const char* where) {
  const std::optional<Path> path = parse(name);
  TORCH_CHECK(path.has_value(), where, " must be one of ", kChoices, ", got '", name, "'");
  TORCH_CHECK(cpu_supports(*path), where, "=", name, ": this CPU cannot run the ", name,
              " path (it lacks the instructions); the paths it can run: ", joined(supported_paths()), ", auto");
  return *path == Path::kAuto ? resolve_auto() : *path;
}

// The in-process switch: -1 = not set (the environment decides).
std::atomic<int> g_override{-1};

Path active_path() {
  const int forced = g_override.load();
  if (forced >= 0) return static_cast<Path>(forced);
  const char* env = std::getenv("CIFARCONV_CPU_GEMM");
  if (env == nullptr || *env == '\0') return resolve_auto();
  return checked(env, "CIFARCONV_CPU_GEMM");
}

const Kernels* kernels_of(Path path) {
  switch (path) {
    case Path::kGeneric:
      return &kGeneric;
#if defined(__x86_64__) || defined(_M_X64)
    case Path::kAvx2:
      return &kAvx2;
    case Path::kAvx512:
      return &kAvx512;
#endif
    default:
      return nullptr;
  }
}

// ---------------------------------------------------------------- cache sizes

struct Caches {
  int64_t l1d, l2, l3;
};

// A size like "48K" from /sys/devices/system/cpu/cpu0/cache/index<i>/size, in bytes, or 0.
int64_t sysfs_cache(int level, bool data) {
  for (int i = 0; i < 8; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::ifstream lv(dir + "level"), ty(dir + "type"), sz(dir + "size");
    int l = 0;
    std::string type, size;
    if (!(lv >> l) || !(ty >> type) || !(sz >> size)) continue;
    if (l != level || (data ? type == "Instruction" : type != "Unified")) continue;
    const int64_t value = std::atoll(size.c_str());
    const char unit = size.empty() ? ' ' : size.back();
    return unit == 'K' ? value << 10 : unit == 'M' ? value << 20 : value;
  }
  return 0;
}

// The data caches one core sees, read at run time: sysconf (glibc asks cpuid), then
// sysfs, then a small laptop's sizes.
Caches read_caches() {
  Caches c{0, 0, 0};
#if defined(_SC_LEVEL1_DCACHE_SIZE)
  c.l1d = std::max<long>(sysconf(_SC_LEVEL1_DCACHE_SIZE), 0);
  c.l2 = std::max<long>(sysconf(_SC_LEVEL2_CACHE_SIZE), 0);
  c.l3 = std::max<long>(sysconf(_SC_LEVEL3_CACHE_SIZE), 0);
#endif
  if (c.l1d == 0) c.l1d = sysfs_cache(1, true);
  if (c.l2 == 0) c.l2 = sysfs_cache(2, false);
  if (c.l3 == 0) c.l3 = sysfs_cache(3, false);
  if (c.l1d == 0) c.l1d = 32 << 10;
  if (c.l2 == 0) c.l2 = 256 << 10;
  return c;
}

const Caches& caches() {
  static const Caches c = read_caches();
  return c;
}

// The blocking of Goto's loops (gemm_driver.inc), from the caches:
//   KC: one B micro-panel (KC x NR floats) fills half of L1, leaving the rest to the A
//       micro-panel streaming past it and to C's tile;
//   MC (rows) and NC (columns): the operand block a driver packs as it goes (MC x KC or
//       KC x NC) and the block of C it adds to (times C's other side, `c_other`: the
//       output channels, say) fill half of L2 together, so that C is added to in L2, not
//       in memory, on every k block after the first.  Each driver packs only one of the
//       two; the other operand is the weight, packed once per call.
Blocking compute_blocking(const Kernels& k, int64_t c_other) {
  const Caches& c = caches();
  const int64_t f = sizeof(float);
  Blocking b;
  b.kc = std::clamp<int64_t>(c.l1d / 2 / (k.nr * f) / k.ku * k.ku, 8 * k.ku, 2048);
  const int64_t block = c.l2 / 2 / ((b.kc + std::max<int64_t>(c_other, 0)) * f);
  b.mc = std::clamp<int64_t>(block / k.mr_pixels * k.mr_pixels, 4 * k.mr_pixels, 1 << 16);
  b.nc = std::clamp<int64_t>(block / k.nr * k.nr, 4 * k.nr, 1 << 16);
  return b;
}

// ---------------------------------------------------------------- the torch ops

// cpu_gemm_select(path): switch this process to `path` (None: back to CIFARCONV_CPU_GEMM /
// auto); returns the previous switch setting, or None.
std::optional<std::string> select_path(std::optional<std::string> path) {
  int value = -1;
  if (path.has_value()) value = static_cast<int>(checked(*path, "the CPU GEMM path"));
  const int before = g_override.exchange(value);
  if (before < 0) return std::nullopt;
  return std::string(kNames[before]);
}

// cpu_gemm_active(): the path float32 CPU convolutions take now.
std::string active_path_name() { return kNames[static_cast<int>(active_path())]; }


// cpu_gemm_info(path): [MR, MR_PIXELS, NR, KU, KC, MC, NC, L1d, L2, L3 bytes] of a path (MC and NC
// for a thin C; a call shrinks them by the size of C's other side).
std::vector<int64_t> path_info(const std::string& path) {
  const Kernels* k = kernels_of(checked(path, "the CPU GEMM path"));
  TORCH_CHECK(k != nullptr, "cpu_gemm_info: the ", path, " path is at::mm, it has no micro-kernel");
  const Blocking b = blocking_for(*k, 0);
  const Caches& c = caches();
  return {k->mr, k->mr_pixels, k->nr, k->ku, b.kc, b.mc, b.nc, c.l1d, c.l2, c.l3};
}

// cpu_fma_peak(path, threads, seconds): the path's register-only FMA rate in GFLOP/s, with
// `threads` threads running the loop at once (each its own, timed together).
double fma_peak(const std::string& path, int64_t threads, double seconds) {
  const Kernels* k = kernels_of(checked(path, "the CPU GEMM path"));
  TORCH_CHECK(k != nullptr, "cpu_fma_peak: the ", path, " path is at::mm, it has no FMA loop of its own");
  TORCH_CHECK(threads >= 1 && threads <= at::get_num_threads(), "cpu_fma_peak: threads must be 1 to ",
              at::get_num_threads(), " (torch's thread count), got ", threads);
  TORCH_CHECK(seconds > 0 && seconds <= 60, "cpu_fma_peak: seconds must be in (0, 60], got ", seconds);
  using clock = std::chrono::steady_clock;
  // Calibrate one thread, then run every thread for about `seconds`.
  int64_t iters = 1 << 16;
  for (;;) {
    const auto t0 = clock::now();
    k->fma_loop(iters);
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    if (s > 0.02 || iters > (int64_t(1) << 40)) {
      iters = std::max<int64_t>(1, static_cast<int64_t>(iters * seconds / std::max(s, 1e-9)));
      break;
    }
    iters *= 4;
  }
  std::vector<double> flops(threads, 0.0);
  const auto t0 = clock::now();
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) flops[t] = k->fma_loop(iters);
  });
  const double s = std::chrono::duration<double>(clock::now() - t0).count();
  double total = 0;
  for (double f : flops) total += f;
  return total / s / 1e9;
}

}  // namespace

const Kernels* active_kernels() { return kernels_of(active_path()); }

Blocking blocking_for(const Kernels& kernels, int64_t c_other) {
  Blocking b = compute_blocking(kernels, c_other);
  // CIFARCONV_CPU_GEMM_BLOCKING=KC,MC,NC replaces the blocking, for experiments (each
  // rounded down to a multiple of KU, MR_PIXELS, NR, and at least one of them).
  const char* env = std::getenv("CIFARCONV_CPU_GEMM_BLOCKING");
  if (env != nullptr && *env != '\0') {
    long long kc = 0, mc = 0, nc = 0;
    char end = 0;
    TORCH_CHECK(std::sscanf(env, "%lld,%lld,%lld%c", &kc, &mc, &nc, &end) == 3 && kc > 0 && mc > 0 && nc > 0,
                "CIFARCONV_CPU_GEMM_BLOCKING must be three positive integers KC,MC,NC, got '", env, "'");
    b.kc = std::max<int64_t>(kc / kernels.ku * kernels.ku, kernels.ku);
    b.mc = std::max<int64_t>(mc / kernels.mr_pixels * kernels.mr_pixels, kernels.mr_pixels);
    b.nc = std::max<int64_t>(nc / kernels.nr * kernels.nr, kernels.nr);
  }
  return b;
}

}  // namespace cpu_gemm
}  // namespace cifarconv

TORCH_LIBRARY_FRAGMENT(cifarconv, m) {
  using namespace cifarconv::cpu_gemm;
  m.def("cpu_gemm_select(str? path) -> str?", &select_path);
  m.def("cpu_gemm_active() -> str", &active_path_name);
  m.def("cpu_gemm_supported() -> str[]", &supported_paths);
  m.def("cpu_gemm_info(str path) -> int[]", &path_info);
  m.def("cpu_fma_peak(str path, int threads, float seconds) -> float", &fma_peak);
}
