// cusim.h: the CUDA simulator's view of the device. Force-included (g++ -x c++ -include cusim.h)
// into every .cu file of the simulator build, so that the same sources that nvcc compiles run on
// the CPU: one fiber per CUDA thread, blocks in sequence, barriers and warp collectives with
// exact semantics. Types and runtime prototypes are NVIDIA's own (host mode of their headers).
// See cuda/sim/README.md for what is simulated and what is deliberately not.
#ifndef CUSIM_H
#define CUSIM_H

#ifndef CUSIM
#define CUSIM 1
#endif
#if defined(__CUDACC__) || defined(__CUDA_ARCH__)
#error "cusim.h is for the g++ simulator build only (never define __CUDA_ARCH__: use KARCH)"
#endif

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- qualifiers -------------------------------------------------------------------------------
// host_defines.h (host mode) already maps __global__/__device__/__host__/__constant__ to nothing.
// __shared__ becomes per-OS-thread static storage: kernels run on the simulator's executor thread,
// whose TLS the simulator poisons at every block start. An initialiser, or an extern (dynamic) __shared__ array, does
// not compile (use DYN_SMEM from launch.cuh for dynamic shared memory).
#undef __shared__
#define __shared__ static thread_local
#undef __launch_bounds__
#define __launch_bounds__(...)
#ifndef __grid_constant__
#define __grid_constant__
#endif

static constexpr int warpSize = 32;

// ---- the simulator's interface (implemented in cuda/sim/*.cpp) --------------------------------
#define CUSIM_SITE_DECL const char *cusim_file_ = __builtin_FILE(), int cusim_line_ = __builtin_LINE()
#define CUSIM_SITE_ARGS cusim_file_, cusim_line_

namespace cusim {

struct Thread { uint3 tid; unsigned lane, warp; };
extern Thread *g_self;        // the running CUDA thread
extern uint3 g_block_idx;     // the running block
extern dim3 g_block_dim, g_grid_dim;
extern unsigned char *g_dyn_smem;  // dynamic shared memory of the running block

// warp collectives
enum WarpKind {
  W_SHFL_IDX, W_SHFL_UP, W_SHFL_DOWN, W_SHFL_XOR, W_BALLOT, W_ANY, W_ALL, W_SYNCWARP,
  W_REDUCE_ADD_U, W_REDUCE_MIN_U, W_REDUCE_MAX_U, W_REDUCE_ADD_S, W_REDUCE_MIN_S, W_REDUCE_MAX_S,
  W_REDUCE_AND, W_REDUCE_OR, W_REDUCE_XOR, W_MATCH_ANY, W_MATCH_ALL,
  W_MMA_F16, W_MMA_BF16, W_LDMATRIX, W_NKINDS
};
uint64_t warp_op(int kind, unsigned mask, uint64_t value, int a, int b, const char *file, int line);
int block_sync(int op, int pred, const char *file, int line);  // op: 0 plain, 1 count, 2 and, 3 or
void yield(const char *file, int line);
[[noreturn]] void trap(const char *what, const char *file, int line);
unsigned active_mask();
long long clock_ticks();

// PTX wrapper bodies (see cuda/ptx_ops.cuh)
void mma_m16n8k16(int bf16, float *d, const uint32_t *a, const uint32_t *b, const float *c,
                  const char *file, int line);
void ldmatrix(int nmat, int trans, uint32_t *r, const void *row, const char *file, int line);
void cp_async(void *dst, const void *src, int cp_size, int src_size, int cg, const char *file, int line);
void cp_async_commit(const char *file, int line);
void cp_async_wait(int n, const char *file, int line);

// kernel launch (LAUNCH in cuda/launch.cuh)
struct LaunchSpec {
  const char *name, *file;
  int line;
  const void *key;  // the kernel function, as cudaFuncSetAttribute sees it
  void (*invoke)(void *closure);
  void (*destroy)(void *closure);
  void *closure;
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  enum { kMaxPtrArgs = 32 };
  const void *ptr_args[kMaxPtrArgs];
  int ptr_arg_index[kMaxPtrArgs];
  int nptr;
};
cudaError_t submit_launch(LaunchSpec &spec);

template <class T> inline void note_arg(LaunchSpec &s, int i, T *p) {
  if (s.nptr < LaunchSpec::kMaxPtrArgs) { s.ptr_args[s.nptr] = (const void *)p; s.ptr_arg_index[s.nptr++] = i; }
}
template <class T> inline void note_arg(LaunchSpec &, int, const T &) {}

template <class... P, class... A>
cudaError_t launch(const char *name, const char *file, int line, void (*k)(P...), dim3 grid, dim3 block,
                   size_t smem, cudaStream_t stream, A &&...args) {
  static_assert(sizeof...(P) == sizeof...(A), "LAUNCH: wrong number of kernel arguments");
  struct Closure { void (*k)(P...); std::tuple<std::decay_t<P>...> args; };
  auto *c = new Closure{k, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
  LaunchSpec s{};
  s.name = name; s.file = file; s.line = line; s.key = (const void *)k;
  s.invoke = [](void *p) { auto *cl = static_cast<Closure *>(p); std::apply(cl->k, cl->args); };
  s.destroy = [](void *p) { delete static_cast<Closure *>(p); };
  s.closure = c; s.grid = grid; s.block = block; s.smem = smem; s.stream = stream;
  std::apply([&s](const auto &...x) { int i = 0; (note_arg(s, i++, x), ...); }, c->args);
  return submit_launch(s);
}

// Each translation unit registers its module's TLS block (where __shared__ variables live).
void register_tls_module(void *(*anchor)());

template <class T> inline uint64_t to_bits(const T &v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp op on a type > 8 bytes");
  uint64_t u = 0; std::memcpy(&u, &v, sizeof(T)); return u;
}
template <class T> inline T from_bits(uint64_t u) { T v; std::memcpy((void *)&v, &u, sizeof(T)); return v; }

}  // namespace cusim

#ifndef CUSIM_INTERNAL
static thread_local char cusim_tls_anchor_;
namespace {
struct CusimTlsRegistrar {
  CusimTlsRegistrar() { ::cusim::register_tls_module([]() -> void * { return &cusim_tls_anchor_; }); }
} cusim_tls_registrar_;
}  // namespace
#endif

// ---- test hooks (simulator only) --------------------------------------------------------------
extern "C" {
// Called with every error message the simulator reports (kernel failures, API misuse).
void cusim_set_error_hook(void (*hook)(const char *msg, void *user), void *user);
// The last message reported, "" if none.
const char *cusim_last_error_message(void);
// Nanoseconds per fiber switch, measured on a ping-pong of two fibers.
double cusim_measure_switch_ns(int iterations);
}

// ---- the runtime's C++ overloads that NVIDIA's cuda_runtime.h declares for nvcc only ----------
template <class T> inline cudaError_t cudaFuncSetAttribute(T *entry, cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute((const void *)entry, attr, value);
}
template <class T> inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *attr, T *entry) {
  return ::cudaFuncGetAttributes(attr, (const void *)entry);
}
template <class T>
inline cudaError_t cudaMemcpyToSymbol(const T &symbol, const void *src, size_t count, size_t offset = 0,
                                      cudaMemcpyKind kind = cudaMemcpyHostToDevice) {
  return ::cudaMemcpyToSymbol((const void *)&symbol, src, count, offset, kind);
}
template <class T>
inline cudaError_t cudaMemcpyToSymbolAsync(const T &symbol, const void *src, size_t count, size_t offset = 0,
                                           cudaMemcpyKind kind = cudaMemcpyHostToDevice, cudaStream_t stream = 0) {
  return ::cudaMemcpyToSymbolAsync((const void *)&symbol, src, count, offset, kind, stream);
}
template <class T>
inline cudaError_t cudaMemcpyFromSymbol(void *dst, const T &symbol, size_t count, size_t offset = 0,
                                        cudaMemcpyKind kind = cudaMemcpyDeviceToHost) {
  return ::cudaMemcpyFromSymbol(dst, (const void *)&symbol, count, offset, kind);
}

// ---- built-in variables -----------------------------------------------------------------------
#define threadIdx (static_cast<const uint3 &>(::cusim::g_self->tid))
#define blockIdx (static_cast<const uint3 &>(::cusim::g_block_idx))
#define blockDim (static_cast<const dim3 &>(::cusim::g_block_dim))
#define gridDim (static_cast<const dim3 &>(::cusim::g_grid_dim))

// ---- barriers and warp collectives ------------------------------------------------------------
inline void __syncthreads(CUSIM_SITE_DECL) { ::cusim::block_sync(0, 1, CUSIM_SITE_ARGS); }
inline int __syncthreads_count(int p, CUSIM_SITE_DECL) { return ::cusim::block_sync(1, p, CUSIM_SITE_ARGS); }
inline int __syncthreads_and(int p, CUSIM_SITE_DECL) { return ::cusim::block_sync(2, p, CUSIM_SITE_ARGS); }
inline int __syncthreads_or(int p, CUSIM_SITE_DECL) { return ::cusim::block_sync(3, p, CUSIM_SITE_ARGS); }
inline void __syncwarp(unsigned mask = 0xffffffffu, CUSIM_SITE_DECL) {
  ::cusim::warp_op(::cusim::W_SYNCWARP, mask, 0, 0, 0, CUSIM_SITE_ARGS);
}
inline unsigned __activemask() { return ::cusim::active_mask(); }

template <class T> inline T __shfl_sync(unsigned mask, T var, int src, int width = warpSize, CUSIM_SITE_DECL) {
  return ::cusim::from_bits<T>(::cusim::warp_op(::cusim::W_SHFL_IDX, mask, ::cusim::to_bits(var), src, width, CUSIM_SITE_ARGS));
}
template <class T> inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize, CUSIM_SITE_DECL) {
  return ::cusim::from_bits<T>(::cusim::warp_op(::cusim::W_SHFL_UP, mask, ::cusim::to_bits(var), (int)delta, width, CUSIM_SITE_ARGS));
}
template <class T> inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize, CUSIM_SITE_DECL) {
  return ::cusim::from_bits<T>(::cusim::warp_op(::cusim::W_SHFL_DOWN, mask, ::cusim::to_bits(var), (int)delta, width, CUSIM_SITE_ARGS));
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize, CUSIM_SITE_DECL) {
  return ::cusim::from_bits<T>(::cusim::warp_op(::cusim::W_SHFL_XOR, mask, ::cusim::to_bits(var), lane_mask, width, CUSIM_SITE_ARGS));
}
inline unsigned __ballot_sync(unsigned mask, int pred, CUSIM_SITE_DECL) {
  return (unsigned)::cusim::warp_op(::cusim::W_BALLOT, mask, pred != 0, 0, 0, CUSIM_SITE_ARGS);
}
inline int __any_sync(unsigned mask, int pred, CUSIM_SITE_DECL) {
  return (int)::cusim::warp_op(::cusim::W_ANY, mask, pred != 0, 0, 0, CUSIM_SITE_ARGS);
}
inline int __all_sync(unsigned mask, int pred, CUSIM_SITE_DECL) {
  return (int)::cusim::warp_op(::cusim::W_ALL, mask, pred != 0, 0, 0, CUSIM_SITE_ARGS);
}
template <class T> inline unsigned __match_any_sync(unsigned mask, T v, CUSIM_SITE_DECL) {
  return (unsigned)::cusim::warp_op(::cusim::W_MATCH_ANY, mask, ::cusim::to_bits(v), 0, 0, CUSIM_SITE_ARGS);
}
template <class T> inline unsigned __match_all_sync(unsigned mask, T v, int *pred, CUSIM_SITE_DECL) {
  uint64_t r = ::cusim::warp_op(::cusim::W_MATCH_ALL, mask, ::cusim::to_bits(v), 0, 0, CUSIM_SITE_ARGS);
  *pred = r != 0;
  return (unsigned)r;
}
#define CUSIM_REDUCE(fn, KU, KS)                                                                   \
  inline unsigned fn(unsigned mask, unsigned v, CUSIM_SITE_DECL) {                                  \
    return (unsigned)::cusim::warp_op(::cusim::KU, mask, v, 0, 0, CUSIM_SITE_ARGS);                 \
  }                                                                                                 \
  inline int fn(unsigned mask, int v, CUSIM_SITE_DECL) {                                            \
    return (int)::cusim::warp_op(::cusim::KS, mask, (uint32_t)v, 0, 0, CUSIM_SITE_ARGS);            \
  }
CUSIM_REDUCE(__reduce_add_sync, W_REDUCE_ADD_U, W_REDUCE_ADD_S)
CUSIM_REDUCE(__reduce_min_sync, W_REDUCE_MIN_U, W_REDUCE_MIN_S)
CUSIM_REDUCE(__reduce_max_sync, W_REDUCE_MAX_U, W_REDUCE_MAX_S)
#undef CUSIM_REDUCE
inline unsigned __reduce_and_sync(unsigned mask, unsigned v, CUSIM_SITE_DECL) {
  return (unsigned)::cusim::warp_op(::cusim::W_REDUCE_AND, mask, v, 0, 0, CUSIM_SITE_ARGS);
}
inline unsigned __reduce_or_sync(unsigned mask, unsigned v, CUSIM_SITE_DECL) {
  return (unsigned)::cusim::warp_op(::cusim::W_REDUCE_OR, mask, v, 0, 0, CUSIM_SITE_ARGS);
}
inline unsigned __reduce_xor_sync(unsigned mask, unsigned v, CUSIM_SITE_DECL) {
  return (unsigned)::cusim::warp_op(::cusim::W_REDUCE_XOR, mask, v, 0, 0, CUSIM_SITE_ARGS);
}

inline void __nanosleep(unsigned, CUSIM_SITE_DECL) { ::cusim::yield(CUSIM_SITE_ARGS); }
[[noreturn]] inline void __trap(CUSIM_SITE_DECL) { ::cusim::trap("__trap()", CUSIM_SITE_ARGS); }
[[noreturn]] inline void __brkpt(CUSIM_SITE_DECL) { ::cusim::trap("__brkpt()", CUSIM_SITE_ARGS); }
inline long long clock64() { return ::cusim::clock_ticks(); }
inline long long __globaltimer() { return ::cusim::clock_ticks(); }

// ---- memory fences and cache-hinted loads/stores ----------------------------------------------
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
template <class T> inline T __ldg(const T *p) { return *p; }
template <class T> inline T __ldca(const T *p) { return *p; }
template <class T> inline T __ldcg(const T *p) { return *p; }
template <class T> inline T __ldcs(const T *p) { return *p; }
template <class T> inline T __ldlu(const T *p) { return *p; }
template <class T> inline T __ldcv(const T *p) { return *p; }
template <class T> inline void __stcg(T *p, T v) { *p = v; }
template <class T> inline void __stcs(T *p, T v) { *p = v; }
template <class T> inline void __stwb(T *p, T v) { *p = v; }
template <class T> inline void __stwt(T *p, T v) { *p = v; }

// ---- atomics (relaxed, like the GPU's; real atomics so that the TSan build sees them) ----------
#define CUSIM_ATOMIC_INT(T)                                                                              \
  inline T atomicAdd(T *a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }                   \
  inline T atomicSub(T *a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }                   \
  inline T atomicExch(T *a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }                 \
  inline T atomicAnd(T *a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }                   \
  inline T atomicOr(T *a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }                     \
  inline T atomicXor(T *a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED); }                   \
  inline T atomicCAS(T *a, T cmp, T v) {                                                                 \
    __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);                  \
    return cmp;                                                                                          \
  }                                                                                                      \
  inline T atomicMax(T *a, T v) {                                                                        \
    T old = __atomic_load_n(a, __ATOMIC_RELAXED);                                                        \
    while (old < v && !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) \
      ;                                                                                                  \
    return old;                                                                                          \
  }                                                                                                      \
  inline T atomicMin(T *a, T v) {                                                                        \
    T old = __atomic_load_n(a, __ATOMIC_RELAXED);                                                        \
    while (old > v && !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) \
      ;                                                                                                  \
    return old;                                                                                          \
  }
CUSIM_ATOMIC_INT(int)
CUSIM_ATOMIC_INT(unsigned)
CUSIM_ATOMIC_INT(unsigned long long)
CUSIM_ATOMIC_INT(long long)
#undef CUSIM_ATOMIC_INT
inline unsigned short atomicCAS(unsigned short *a, unsigned short cmp, unsigned short v) {
  __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return cmp;
}
inline unsigned atomicInc(unsigned *a, unsigned lim) {  // ((old >= lim) ? 0 : old + 1)
  unsigned old = __atomic_load_n(a, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(a, &old, old >= lim ? 0u : old + 1, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    ;
  return old;
}
inline unsigned atomicDec(unsigned *a, unsigned lim) {  // ((old == 0 || old > lim) ? lim : old - 1)
  unsigned old = __atomic_load_n(a, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(a, &old, (old == 0 || old > lim) ? lim : old - 1, true, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED))
    ;
  return old;
}
namespace cusim {
// Read-modify-write of a float-like value through a CAS on its bits.
template <class T, class U, class F> inline T atomic_rmw(T *a, F f) {
  static_assert(sizeof(T) == sizeof(U), "");
  U *u = reinterpret_cast<U *>(a);
  U old = __atomic_load_n(u, __ATOMIC_RELAXED), nw;
  do {
    T o; std::memcpy((void *)&o, &old, sizeof o);
    T n = f(o); std::memcpy(&nw, (const void *)&n, sizeof n);
  } while (!__atomic_compare_exchange_n(u, &old, nw, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  T o; std::memcpy((void *)&o, &old, sizeof o);
  return o;
}
}  // namespace cusim
inline float atomicAdd(float *a, float v) { return cusim::atomic_rmw<float, uint32_t>(a, [v](float o) { return o + v; }); }
inline double atomicAdd(double *a, double v) { return cusim::atomic_rmw<double, uint64_t>(a, [v](double o) { return o + v; }); }
inline float atomicExch(float *a, float v) { return cusim::atomic_rmw<float, uint32_t>(a, [v](float) { return v; }); }
inline __half atomicAdd(__half *a, __half v) { return cusim::atomic_rmw<__half, uint16_t>(a, [v](__half o) { return __hadd(o, v); }); }
inline __half2 atomicAdd(__half2 *a, __half2 v) { return cusim::atomic_rmw<__half2, uint32_t>(a, [v](__half2 o) { return __hadd2(o, v); }); }
inline __nv_bfloat16 atomicAdd(__nv_bfloat16 *a, __nv_bfloat16 v) {
  return cusim::atomic_rmw<__nv_bfloat16, uint16_t>(a, [v](__nv_bfloat16 o) { return __hadd(o, v); });
}
inline __nv_bfloat162 atomicAdd(__nv_bfloat162 *a, __nv_bfloat162 v) {
  return cusim::atomic_rmw<__nv_bfloat162, uint32_t>(a, [v](__nv_bfloat162 o) { return __hadd2(o, v); });
}
#define CUSIM_SCOPED(name)                                                          \
  template <class T, class... R> inline auto name##_block(T *a, R... r) { return name(a, r...); } \
  template <class T, class... R> inline auto name##_system(T *a, R... r) { return name(a, r...); }
CUSIM_SCOPED(atomicAdd) CUSIM_SCOPED(atomicSub) CUSIM_SCOPED(atomicExch) CUSIM_SCOPED(atomicMax)
CUSIM_SCOPED(atomicMin) CUSIM_SCOPED(atomicCAS) CUSIM_SCOPED(atomicAnd) CUSIM_SCOPED(atomicOr)
CUSIM_SCOPED(atomicXor) CUSIM_SCOPED(atomicInc) CUSIM_SCOPED(atomicDec)
#undef CUSIM_SCOPED

// ---- integer and float intrinsics -------------------------------------------------------------
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(x);
}
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  uint64_t v = ((uint64_t)y << 32) | x;
  unsigned r = 0;
  for (int i = 0; i < 4; i++) r |= (unsigned)((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
  return r;
}
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
  s &= 31; return s ? (hi << s) | (lo >> (32 - s)) : hi;
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
  s &= 31; return s ? (lo >> s) | (hi << (32 - s)) : lo;
}
inline unsigned __funnelshift_lc(unsigned lo, unsigned hi, unsigned s) { return s >= 32 ? lo : __funnelshift_l(lo, hi, s); }
inline unsigned __funnelshift_rc(unsigned lo, unsigned hi, unsigned s) { return s >= 32 ? hi : __funnelshift_r(lo, hi, s); }
inline int __mul24(int a, int b) { return (int)((unsigned)((a << 8) >> 8) * (unsigned)((b << 8) >> 8)); }
inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffff) * (b & 0xffffff); }
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * b) >> 64); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline float __int_as_float(int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline int __float_as_int(float f) { int x; std::memcpy(&x, &f, 4); return x; }
inline float __uint_as_float(unsigned x) { float f; std::memcpy(&f, &x, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned x; std::memcpy(&x, &f, 4); return x; }
inline double __longlong_as_double(long long x) { double d; std::memcpy(&d, &x, 8); return d; }
inline long long __double_as_longlong(double d) { long long x; std::memcpy(&x, &d, 8); return x; }
// Approximate intrinsics: computed accurately here; the GPU's are a few ulp off. Tests use tolerances.
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float *s, float *c) { *s = sinf(x); *c = cosf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frsqrt_rn(float x) { return (float)(1.0 / std::sqrt((double)x)); }
inline float rsqrtf(float x) { return (float)(1.0 / std::sqrt((double)x)); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __saturatef(float x) { return x != x ? 0.0f : x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __float2int_rd(float x) { return (int)floorf(x); }
inline int __float2int_ru(float x) { return (int)ceilf(x); }
inline unsigned __float2uint_rn(float x) { return (unsigned)nearbyintf(x); }
inline unsigned __float2uint_rz(float x) { return (unsigned)x; }
inline float __int2float_rn(int x) { return (float)x; }
inline float __uint2float_rn(unsigned x) { return (float)x; }

// min/max as CUDA's math_functions.hpp defines them (mixed signedness goes unsigned), and friends
#define CUSIM_MINMAX(R, A, B)                                                   \
  inline R min(A a, B b) { return (R)a < (R)b ? (R)a : (R)b; }                  \
  inline R max(A a, B b) { return (R)a > (R)b ? (R)a : (R)b; }
CUSIM_MINMAX(int, int, int)
CUSIM_MINMAX(unsigned, unsigned, unsigned)
CUSIM_MINMAX(unsigned, int, unsigned)
CUSIM_MINMAX(unsigned, unsigned, int)
CUSIM_MINMAX(long, long, long)
CUSIM_MINMAX(unsigned long, unsigned long, unsigned long)
CUSIM_MINMAX(unsigned long, long, unsigned long)
CUSIM_MINMAX(unsigned long, unsigned long, long)
CUSIM_MINMAX(long long, long long, long long)
CUSIM_MINMAX(unsigned long long, unsigned long long, unsigned long long)
CUSIM_MINMAX(unsigned long long, long long, unsigned long long)
CUSIM_MINMAX(unsigned long long, unsigned long long, long long)
#undef CUSIM_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin(a, b); }
inline double max(float a, double b) { return fmax(a, b); }
inline double min(double a, float b) { return fmin(a, b); }
inline double max(double a, float b) { return fmax(a, b); }
inline unsigned umin(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned umax(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long llmin(long long a, long long b) { return a < b ? a : b; }
inline long long llmax(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long ullmin(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long ullmax(unsigned long long a, unsigned long long b) { return a > b ? a : b; }

// ---- device-only __half / __nv_bfloat16 functions (NVIDIA's headers define them for device only) --
namespace cusim {
template <class H> inline H h_from(float f);
template <> inline __half h_from<__half>(float f) { return __float2half_rn(f); }
template <> inline __nv_bfloat16 h_from<__nv_bfloat16>(float f) { return __float2bfloat16_rn(f); }
inline float h_to(__half h) { return __half2float(h); }
inline float h_to(__nv_bfloat16 h) { return __bfloat162float(h); }
template <class H> inline H h_fma(H a, H b, H c) {  // a*b is exact in float; one rounding to float
  return h_from<H>(fmaf(h_to(a), h_to(b), h_to(c)));
}
template <class H> inline H h_relu(H x) { return h_to(x) < 0.0f ? h_from<H>(0.0f) : x; }
template <class H> inline H h_sat(H x) { return h_from<H>(__saturatef(h_to(x))); }
}  // namespace cusim
#define CUSIM_H1(name, expr)                                                                              \
  inline __half name(__half x) { float v = __half2float(x); (void)v; return __float2half_rn(expr); }      \
  inline __nv_bfloat16 name(__nv_bfloat16 x) { float v = __bfloat162float(x); (void)v; return __float2bfloat16_rn(expr); }
#define CUSIM_H2(name, f1)                                                                               \
  inline __half2 name(__half2 x) { return __halves2half2(f1(__low2half(x)), f1(__high2half(x))); }      \
  inline __nv_bfloat162 name(__nv_bfloat162 x) { return __halves2bfloat162(f1(__low2bfloat16(x)), f1(__high2bfloat16(x))); }
CUSIM_H1(hexp, expf(v)) CUSIM_H1(hexp2, exp2f(v)) CUSIM_H1(hexp10, exp10f(v))
CUSIM_H1(hlog, logf(v)) CUSIM_H1(hlog2, log2f(v)) CUSIM_H1(hlog10, log10f(v))
CUSIM_H1(hsqrt, sqrtf(v)) CUSIM_H1(hrsqrt, 1.0f / sqrtf(v)) CUSIM_H1(hrcp, 1.0f / v)
CUSIM_H1(hsin, sinf(v)) CUSIM_H1(hcos, cosf(v)) CUSIM_H1(htanh, tanhf(v)) CUSIM_H1(htanh_approx, tanhf(v))
CUSIM_H1(hceil, ceilf(v)) CUSIM_H1(hfloor, floorf(v)) CUSIM_H1(htrunc, truncf(v)) CUSIM_H1(hrint, nearbyintf(v))
CUSIM_H2(h2exp, hexp) CUSIM_H2(h2exp2, hexp2) CUSIM_H2(h2exp10, hexp10) CUSIM_H2(h2log, hlog)
CUSIM_H2(h2log2, hlog2) CUSIM_H2(h2log10, hlog10) CUSIM_H2(h2sqrt, hsqrt) CUSIM_H2(h2rsqrt, hrsqrt)
CUSIM_H2(h2rcp, hrcp) CUSIM_H2(h2sin, hsin) CUSIM_H2(h2cos, hcos) CUSIM_H2(h2tanh, htanh)
CUSIM_H2(h2tanh_approx, htanh_approx) CUSIM_H2(h2ceil, hceil) CUSIM_H2(h2floor, hfloor)
CUSIM_H2(h2trunc, htrunc) CUSIM_H2(h2rint, hrint)
#undef CUSIM_H1
#undef CUSIM_H2
#define CUSIM_HFMA(H, H2, lo, hi, mk)                                                                   \
  inline H __hfma(H a, H b, H c) { return cusim::h_fma(a, b, c); }                                      \
  inline H __hfma_relu(H a, H b, H c) { return cusim::h_relu(cusim::h_fma(a, b, c)); }                  \
  inline H __hfma_sat(H a, H b, H c) { return cusim::h_sat(cusim::h_fma(a, b, c)); }                    \
  inline H2 __hfma2(H2 a, H2 b, H2 c) { return mk(__hfma(lo(a), lo(b), lo(c)), __hfma(hi(a), hi(b), hi(c))); } \
  inline H2 __hfma2_relu(H2 a, H2 b, H2 c) {                                                            \
    return mk(__hfma_relu(lo(a), lo(b), lo(c)), __hfma_relu(hi(a), hi(b), hi(c)));                      \
  }                                                                                                     \
  inline H2 __hfma2_sat(H2 a, H2 b, H2 c) { return mk(__hfma_sat(lo(a), lo(b), lo(c)), __hfma_sat(hi(a), hi(b), hi(c))); }
CUSIM_HFMA(__half, __half2, __low2half, __high2half, __halves2half2)
CUSIM_HFMA(__nv_bfloat16, __nv_bfloat162, __low2bfloat16, __high2bfloat16, __halves2bfloat162)
#undef CUSIM_HFMA
inline int __half2int_rn(__half h) { return (int)nearbyintf(__half2float(h)); }
inline int __half2int_rd(__half h) { return (int)floorf(__half2float(h)); }
inline int __half2int_ru(__half h) { return (int)ceilf(__half2float(h)); }
inline int __bfloat162int_rn(__nv_bfloat16 h) { return (int)nearbyintf(__bfloat162float(h)); }
inline int __bfloat162int_rd(__nv_bfloat16 h) { return (int)floorf(__bfloat162float(h)); }
inline int __bfloat162int_ru(__nv_bfloat16 h) { return (int)ceilf(__bfloat162float(h)); }

#endif  // CUSIM_H
