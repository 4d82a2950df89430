// exec.cpp: the execution model. Kernels run on one executor thread (whose TLS holds the static
// __shared__ variables), block after block; each CUDA thread is a fiber. A fiber runs until it
// blocks on a barrier or a warp collective; the last arrival completes the operation and makes the
// waiters runnable. No runnable fiber but unfinished ones is a deadlock, reported with every
// thread's wait site. Warp collectives (shuffles, votes, mma, ldmatrix) use one exchange record
// per (warp, mask): each lane deposits its inputs, the last one evaluates the instruction for all.
#include "internal.h"
#include "fiber.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <link.h>
#include <memory>
#include <thread>
#include <vector>
#include <sys/mman.h>
#include <unistd.h>

#ifdef CUSIM_TSAN
extern "C" {
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
}
#define TSAN_ACQUIRE(p) __tsan_acquire(p)
#define TSAN_RELEASE(p) __tsan_release(p)
#else
#define TSAN_ACQUIRE(p) ((void)0)
#define TSAN_RELEASE(p) ((void)0)
#endif

namespace cusim {

Thread *g_self;
uint3 g_block_idx;
dim3 g_block_dim, g_grid_dim;
unsigned char *g_dyn_smem;

namespace {

enum State { READY, RUNNING, WAIT_BAR, WAIT_WARP, DONE };

struct Copy { unsigned char *dst; const unsigned char *src; int size, src_size, group; };
struct Group;

struct Rec : Thread {  // one simulated CUDA thread (a pool slot, reused by every block)
  Fiber fiber;
  int linear = 0;
  State state = DONE;
  const char *what = "", *file = "", *site_extra = "";
  int line = 0;
  unsigned wmask = 0;
  Group *grp = nullptr;
  std::vector<Copy> copies;
  int committed = 0;
};

struct LaneIn { uint64_t v; int a, b; uint32_t w[10]; const void *ptr; };

struct Group {  // one in-flight warp collective
  int kind, nmat, trans;
  unsigned mask, arrived;
  const char *file;
  int line, readers;
  LaneIn in[32];
  uint64_t res[32];
  uint32_t out[32][4];
  char tsan_sync;
};

// Everything a fiber touches is allocated by the scheduler before the block starts: under
// ThreadSanitizer an allocation (or a memmove of a vector) inside one fiber, seen by another, would
// be reported as a race in the simulator instead of the kernel.
struct Warp {
  unsigned exited;
  int nopen;
  Group *open[32];  // collectives in flight, one per distinct mask
};

const char *const kKindName[W_NKINDS] = {
    "__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync", "__ballot_sync", "__any_sync",
    "__all_sync", "__syncwarp", "__reduce_add_sync", "__reduce_min_sync", "__reduce_max_sync",
    "__reduce_add_sync", "__reduce_min_sync", "__reduce_max_sync", "__reduce_and_sync", "__reduce_or_sync",
    "__reduce_xor_sync", "__match_any_sync", "__match_all_sync", "mma.sync.m16n8k16 (f16)",
    "mma.sync.m16n8k16 (bf16)", "ldmatrix.sync"};

struct Exec {
  // the executor thread
  std::mutex mu;
  std::condition_variable cv;
  const LaunchSpec *job = nullptr;
  bool done = false;
  cudaError_t result = cudaSuccess;
  bool started = false;
  // the running kernel
  const LaunchSpec *spec = nullptr;
  int nthreads = 0, ndone = 0;
  std::vector<std::unique_ptr<Rec>> pool;
  std::vector<Rec *> recs;  // pool[i].get()
  Fiber host;
  std::vector<int> ring;
  size_t rhead = 0, rcount = 0;
  std::vector<Warp> warps;
  std::vector<std::unique_ptr<Group>> groups;
  std::vector<Group *> free_groups;  // capacity == groups.size(): never reallocated by a fiber
  // the block barrier
  int bar_arrived = 0, bar_op = 0, bar_acc = 0, bar_result = 0;
  unsigned bar_gen = 0;
  const char *bar_file = "";
  int bar_line = 0;
  std::vector<int> bar_waiters;  // capacity nthreads
  char tsan_bar[2], tsan_start, tsan_end;
  // outcome
  bool failed = false, deadlock = false;
  cudaError_t fail_code = cudaSuccess;
  std::string msg;
  bool reverse = false;
  size_t stack_bytes = 0;
  // shared memory: TLS blocks of the modules with kernels (executor thread), dynamic arena
  std::vector<std::pair<char *, size_t>> tls;
  size_t tls_anchors_seen = 0;
  unsigned char *arena_end = nullptr;  // a PROT_NONE page follows
  size_t dyn_size = 0;
};
Exec &E = *new Exec();  // never destroyed: the executor thread outlives main()

std::mutex &anchor_mu() { static std::mutex m; return m; }
std::vector<void *(*)()> &anchors() { static std::vector<void *(*)()> v; return v; }

Rec *self() { return static_cast<Rec *>(g_self); }

std::string where(const Rec *r) {
  const LaunchSpec &s = *E.spec;
  return fmt("kernel '%s' (launched at %s:%d), block (%u,%u,%u), thread (%u,%u,%u)", s.name, s.file, s.line,
             g_block_idx.x, g_block_idx.y, g_block_idx.z, r->tid.x, r->tid.y, r->tid.z);
}

void switch_next(Rec *r, bool dying);

// An error in the running kernel: remember it and abandon the launch (the fibers never resume).
[[noreturn]] void fail(cudaError_t code, const char *f, ...) __attribute__((format(printf, 2, 3)));
void fail(cudaError_t code, const char *f, ...) {
  // No heap object may stay alive in this frame: the fiber is abandoned (its stack is never unwound).
  char m[2048];
  va_list ap;
  va_start(ap, f);
  vsnprintf(m, sizeof m, f, ap);
  va_end(ap);
  Rec *r = self();
  E.failed = true;
  E.fail_code = code;
  E.msg = "error in " + where(r) + ":\n  " + m;
  TSAN_RELEASE(&E.tsan_end);
  g_self = nullptr;
  fiber_switch(&r->fiber, &E.host, true);
  __builtin_unreachable();
}

// ---- scheduling ----
void make_ready(Rec *r) {  // a FIFO ring of nthreads entries (each thread is in it at most once)
  r->state = READY;
  size_t i = E.rhead + E.rcount++;
  E.ring[i >= E.ring.size() ? i - E.ring.size() : i] = r->linear;
}

Rec *pop_ready() {
  if (!E.rcount) return nullptr;
  Rec *r = E.recs[E.ring[E.rhead]];
  if (++E.rhead == E.ring.size()) E.rhead = 0;
  E.rcount--;
  return r;
}

// Leave the CPU to the next runnable thread (or to the scheduler when there is none).
void switch_next(Rec *r, bool dying) {
  Rec *next = pop_ready();
  if (!next) {
    if (E.ndone < E.nthreads) E.deadlock = true;
    g_self = nullptr;
    fiber_switch(&r->fiber, &E.host, dying);
    return;
  }
  next->state = RUNNING;
  g_self = next;
  if (next != r) fiber_switch(&r->fiber, &next->fiber, dying);
}

void park(Rec *r) { switch_next(r, false); }

// ---- warp collectives ----
Group *alloc_group() {
  if (E.free_groups.empty()) {  // more collectives in flight than planned for (rare)
    E.groups.emplace_back(new Group());
    E.free_groups.reserve(E.groups.size());
    return E.groups.back().get();
  }
  Group *g = E.free_groups.back();
  E.free_groups.pop_back();
  return g;
}

bool aligned_kind(int k) { return k == W_MMA_F16 || k == W_MMA_BF16 || k == W_LDMATRIX; }
bool same_site(const char *f1, int l1, const char *f2, int l2) { return l1 == l2 && (f1 == f2 || !strcmp(f1, f2)); }

const char *lane_state(const Warp &w, unsigned mask, int j) {
  if (!(mask >> j & 1)) return "is not in the mask";
  if ((unsigned)(self()->warp * 32 + j) >= (unsigned)E.nthreads) return "does not exist (partial warp)";
  return (w.exited >> j & 1) ? "has exited" : "did not arrive";
}

bool is_shared(const void *p, size_t n) {
  const unsigned char *c = static_cast<const unsigned char *>(p);
  if (c >= g_dyn_smem && c + n <= g_dyn_smem + E.dyn_size) return true;
  for (auto &t : E.tls)
    if (c >= (unsigned char *)t.first && c + n <= (unsigned char *)t.first + t.second) return true;
  return false;
}

// mem_describe for fail()'s arguments, in static storage (see fail)
const char *describe(const void *p, size_t n) {
  static char buf[256];
  snprintf(buf, sizeof buf, "%s", mem_describe(p, n).c_str());
  return buf;
}

float bits_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
uint32_t f_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
double half_at(uint32_t reg, int hi, bool bf16) {
  uint16_t h = (uint16_t)(reg >> (hi ? 16 : 0));
  if (bf16) return (double)bits_f((uint32_t)h << 16);
  __half x; memcpy((void *)&x, &h, 2);
  return (double)__half2float(x);
}

void eval_shuffle(Group *g, const Warp &w) {
  for (int L = 0; L < 32; L++) {
    if (!(g->arrived >> L & 1)) continue;
    const LaneIn &in = g->in[L];
    int width = in.b;
    if (width < 1 || width > 32 || (width & (width - 1)))
      fail(cudaErrorLaunchFailure, "%s at %s:%d: width %d is not a power of 2 in [1, 32]", kKindName[g->kind], g->file,
           g->line, width);
    // PTX shfl.sync: c = ((32 - width) << 8) | clamp; segmask = c[12:8]
    int segmask = (32 - width) & 31, b = in.a & 31, minlane = L & segmask;
    int maxlane = g->kind == W_SHFL_UP ? minlane : (minlane | (31 & ~segmask));
    int j;
    bool p;
    switch (g->kind) {
      case W_SHFL_UP: j = L - b; p = j >= maxlane; break;
      case W_SHFL_DOWN: j = L + b; p = j <= maxlane; break;
      case W_SHFL_XOR: j = L ^ b; p = j <= maxlane; break;
      default: j = minlane | (b & ~segmask); p = j <= maxlane; break;
    }
    if (!p) j = L;
    if (!(g->arrived >> j & 1))
      fail(cudaErrorLaunchFailure, "%s(mask 0x%08x) at %s:%d: lane %d reads lane %d, which %s", kKindName[g->kind],
           g->mask, g->file, g->line, L, j, lane_state(w, g->mask, j));
    g->res[L] = g->in[j].v;
  }
}

void eval_mma(Group *g) {
  bool bf = g->kind == W_MMA_BF16;
  double A[16][16], B[16][8], C[16][8];
  for (int L = 0; L < 32; L++) {
    const uint32_t *w = g->in[L].w;
    int gr = L >> 2, t = L & 3;
    for (int i = 0; i < 8; i++)
      A[gr + 8 * (i == 2 || i == 3 || i == 6 || i == 7)][2 * t + (i & 1) + 8 * (i >= 4)] = half_at(w[i / 2], i & 1, bf);
    for (int i = 0; i < 4; i++) B[2 * t + (i & 1) + 8 * (i >= 2)][gr] = half_at(w[4 + i / 2], i & 1, bf);
    for (int i = 0; i < 4; i++) C[gr + 8 * (i >= 2)][2 * t + (i & 1)] = bits_f(w[6 + i]);
  }
  for (int L = 0; L < 32; L++) {
    int gr = L >> 2, t = L & 3;
    for (int i = 0; i < 4; i++) {
      int row = gr + 8 * (i >= 2), col = 2 * t + (i & 1);
      double acc = 0;
      for (int k = 0; k < 16; k++) acc += A[row][k] * B[k][col];  // exact: 16 products of 11-bit values
      g->out[L][i] = f_bits((float)(acc + C[row][col]));
    }
  }
}

void eval_ldmatrix(Group *g) {
  const uint16_t *rows[4][8];
  for (int j = 0; j < g->nmat; j++)
    for (int r = 0; r < 8; r++) {
      int L = 8 * j + r;
      const void *p = g->in[L].ptr;
      if ((uintptr_t)p % 16)
        fail(cudaErrorMisalignedAddress, "ldmatrix at %s:%d: lane %d row address %p is not 16-byte aligned", g->file,
             g->line, L, p);
      if (!is_shared(p, 16))
        fail(cudaErrorIllegalAddress, "ldmatrix at %s:%d: lane %d row address %p is not shared memory (%s)", g->file,
             g->line, L, p, describe(p, 16));
      rows[j][r] = static_cast<const uint16_t *>(p);
    }
  for (int L = 0; L < 32; L++)
    for (int j = 0; j < g->nmat; j++) {
      uint32_t lo, hi;
      if (g->trans) { lo = rows[j][2 * (L % 4)][L / 4]; hi = rows[j][2 * (L % 4) + 1][L / 4]; }
      else { lo = rows[j][L / 4][2 * (L % 4)]; hi = rows[j][L / 4][2 * (L % 4) + 1]; }
      g->out[L][j] = lo | hi << 16;
    }
}

void evaluate(Group *g, const Warp &w) {
  unsigned a = g->arrived;
  uint64_t r = 0;
  switch (g->kind) {
    case W_SHFL_IDX: case W_SHFL_UP: case W_SHFL_DOWN: case W_SHFL_XOR: eval_shuffle(g, w); return;
    case W_SYNCWARP: return;
    case W_MMA_F16: case W_MMA_BF16: case W_LDMATRIX:
      if (a != 0xffffffffu)
        fail(cudaErrorLaunchFailure, "%s at %s:%d needs all 32 lanes of the warp, but lanes 0x%08x have exited",
             kKindName[g->kind], g->file, g->line, ~a);
      if (g->kind == W_LDMATRIX) eval_ldmatrix(g); else eval_mma(g);
      return;
    case W_MATCH_ANY:
      for (int L = 0; L < 32; L++) {
        if (!(a >> L & 1)) continue;
        unsigned m = 0;
        for (int j = 0; j < 32; j++) if ((a >> j & 1) && g->in[j].v == g->in[L].v) m |= 1u << j;
        g->res[L] = m;
      }
      return;
    default: break;
  }
  bool first = true;
  for (int L = 0; L < 32; L++) {
    if (!(a >> L & 1)) continue;
    uint64_t v = g->in[L].v;
    int32_t s = (int32_t)(uint32_t)v, rs = (int32_t)(uint32_t)r;
    switch (g->kind) {
      case W_BALLOT: case W_ANY: if (v) r |= 1u << L; break;
      case W_ALL: if (v) r |= 1u << L; break;
      case W_REDUCE_ADD_U: case W_REDUCE_ADD_S: r = (uint32_t)((uint32_t)r + (uint32_t)v); break;
      case W_REDUCE_MIN_U: r = first || (uint32_t)v < (uint32_t)r ? (uint32_t)v : r; break;
      case W_REDUCE_MAX_U: r = first || (uint32_t)v > (uint32_t)r ? (uint32_t)v : r; break;
      case W_REDUCE_MIN_S: r = first || s < rs ? (uint32_t)s : r; break;
      case W_REDUCE_MAX_S: r = first || s > rs ? (uint32_t)s : r; break;
      case W_REDUCE_AND: r = first ? (uint32_t)v : (r & v); break;
      case W_REDUCE_OR: r |= (uint32_t)v; break;
      case W_REDUCE_XOR: r ^= (uint32_t)v; break;
      case W_MATCH_ALL: if (!first && v != g->in[__builtin_ctz(a)].v) r = 1; break;
    }
    first = false;
  }
  if (g->kind == W_ANY) r = r != 0;
  if (g->kind == W_ALL) r = r == a;
  if (g->kind == W_MATCH_ALL) r = r ? 0 : a;
  for (int L = 0; L < 32; L++) g->res[L] = r;
}

// Complete g if every live lane of its mask has arrived.
bool try_complete(Warp &w, Group *g) {
  unsigned need = g->mask & ~w.exited;
  if ((g->arrived & need) != need) return false;
  for (int i = 0; i < w.nopen; i++)
    if (w.open[i] == g) { w.open[i] = w.open[--w.nopen]; break; }
  evaluate(g, w);
  g->readers = __builtin_popcount(g->arrived);
  int base = (int)self()->warp * 32;
  for (int i = 0; i < 32; i++) {
    int L = E.reverse ? 31 - i : i;
    if (!(g->arrived >> L & 1)) continue;
    Rec *r = E.pool[base + L].get();
    if (r != self() && r->state == WAIT_WARP && r->grp == g) make_ready(r);
  }
  return true;
}

// Deposit this lane's inputs and wait for the whole mask; returns the completed group.
Group *warp_arrive(int kind, unsigned mask, const LaneIn &in, const char *file, int line, int nmat = 0, int trans = 0) {
  Rec *r = self();
  if (!r) { fprintf(stderr, "cusim: %s called outside a kernel\n", kKindName[kind]); abort(); }
  Warp &w = E.warps[r->warp];
  unsigned bit = 1u << r->lane;
  if (!(mask & bit))
    fail(cudaErrorLaunchFailure, "%s(mask 0x%08x) at %s:%d: the calling lane %u is not in the mask", kKindName[kind],
         mask, file, line, r->lane);
  Group *g = nullptr;
  for (int i = 0; i < w.nopen; i++)
    if (w.open[i]->mask == mask) { g = w.open[i]; break; }
  if (!g) {
    g = alloc_group();
    g->kind = kind; g->mask = mask; g->arrived = 0; g->file = file; g->line = line; g->nmat = nmat; g->trans = trans;
    w.open[w.nopen++] = g;  // a lane is in at most one collective: at most 32 masks
  } else if (g->kind != kind || g->nmat != nmat || g->trans != trans) {
    fail(cudaErrorLaunchFailure,
         "warp collectives disagree (mask 0x%08x): lanes 0x%08x are in %s at %s:%d, lane %u calls %s at %s:%d", mask,
         g->arrived, kKindName[g->kind], g->file, g->line, r->lane, kKindName[kind], file, line);
  } else if (aligned_kind(kind) && !same_site(file, line, g->file, g->line)) {
    fail(cudaErrorLaunchFailure,
         "%s is .aligned: all lanes must execute the same instruction, but lanes 0x%08x are at %s:%d and lane %u at %s:%d",
         kKindName[kind], g->arrived, g->file, g->line, r->lane, file, line);
  }
  g->in[r->lane] = in;
  g->arrived |= bit;
  TSAN_RELEASE(&g->tsan_sync);
  r->grp = g; r->what = kKindName[kind]; r->file = file; r->line = line; r->wmask = mask;
  if (!try_complete(w, g)) {
    r->state = WAIT_WARP;
    park(r);
  }
  TSAN_ACQUIRE(&g->tsan_sync);
  r->grp = nullptr;
  return g;
}

void warp_leave(Group *g) {
  if (--g->readers == 0) E.free_groups.push_back(g);
}

// ---- blocks ----
void thread_exit(Rec *r) {
  if (!r->copies.empty())
    fail(cudaErrorLaunchFailure, "thread exits with %zu cp.async copies pending (no cp_async_wait for them)",
         r->copies.size());
  if (E.bar_arrived > 0)
    fail(cudaErrorLaunchFailure,
         "thread exits while %d thread(s) wait at __syncthreads() at %s:%d: every thread of the block must reach "
         "every barrier",
         E.bar_arrived, E.bar_file, E.bar_line);
  r->state = DONE;
  E.ndone++;
  Warp &w = E.warps[r->warp];
  w.exited |= 1u << r->lane;
  Group *open[32];
  int nopen = w.nopen;
  for (int i = 0; i < nopen; i++) open[i] = w.open[i];
  for (int i = 0; i < nopen; i++) try_complete(w, open[i]);
  TSAN_RELEASE(&E.tsan_end);
  switch_next(r, true);
  __builtin_unreachable();
}

void thread_main(void *p) {
  Rec *r = static_cast<Rec *>(p);
  TSAN_ACQUIRE(&E.tsan_start);
  E.spec->invoke(E.spec->closure);
  thread_exit(r);
}

void setup_tls() {
  std::vector<void *(*)()> a;
  {
    std::lock_guard<std::mutex> g(anchor_mu());
    if (anchors().size() == E.tls_anchors_seen) return;
    a = anchors();
    E.tls_anchors_seen = a.size();
  }
  struct Ctx { std::vector<char *> want; std::vector<std::pair<char *, size_t>> *out; } ctx{{}, &E.tls};
  for (auto f : a) ctx.want.push_back(static_cast<char *>(f()));  // also allocates a lazily created TLS block
  E.tls.clear();
  dl_iterate_phdr(
      [](dl_phdr_info *info, size_t, void *vp) -> int {
        Ctx *c = static_cast<Ctx *>(vp);
        char *data = static_cast<char *>(info->dlpi_tls_data);
        for (int i = 0; i < info->dlpi_phnum; i++) {
          if (info->dlpi_phdr[i].p_type != PT_TLS || !data) continue;
          size_t sz = info->dlpi_phdr[i].p_memsz;
          for (char *w : c->want)
            if (w >= data && w < data + sz) { c->out->push_back({data, sz}); break; }
        }
        return 0;
      },
      &ctx);
}

void segv_handler(int sig, siginfo_t *info, void *uc);
struct sigaction g_old_segv;

void executor_setup() {
  fiber_host_init(&E.host);
  size_t ps = page_size(), arena = 256 * 1024;
  void *m = mmap(nullptr, arena + ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) { perror("cusim: mmap"); abort(); }
  mprotect(static_cast<char *>(m) + arena, ps, PROT_NONE);
  E.arena_end = static_cast<unsigned char *>(m) + arena;
  long long kb = 256;
  env_int("CUSIM_STACK_KB", 256, &kb);
  E.stack_bytes = (size_t)std::max(16LL, kb) * 1024;
  // report stack overflows and dynamic-shared-memory overruns instead of a bare SIGSEGV
  static std::vector<char> alt(64 * 1024);
  stack_t ss{};
  ss.ss_sp = alt.data();
  ss.ss_size = alt.size();
  sigaltstack(&ss, nullptr);
  struct sigaction sa{};
  sa.sa_sigaction = segv_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_old_segv);
}

void segv_handler(int sig, siginfo_t *info, void *uc) {
  char buf[512];
  int n = 0;
  const void *a = info->si_addr;
  if (E.spec && (const unsigned char *)a >= E.arena_end && (const unsigned char *)a < E.arena_end + page_size())
    n = snprintf(buf, sizeof buf,
                 "cusim: kernel '%s' (launched at %s:%d) accessed %p, past the end of its %zu bytes of dynamic "
                 "shared memory\n",
                 E.spec->name, E.spec->file, E.spec->line, a, E.dyn_size);
  for (auto &r : E.pool)
    if (!n && fiber_in_guard(&r->fiber, a))
      n = snprintf(buf, sizeof buf,
                   "cusim: stack overflow in kernel '%s', thread (%u,%u,%u): raise CUSIM_STACK_KB (now %zu)\n",
                   E.spec ? E.spec->name : "?", r->tid.x, r->tid.y, r->tid.z, E.stack_bytes / 1024);
  if (n > 0 && write(2, buf, (size_t)n) < 0) {}
  sigaction(SIGSEGV, &g_old_segv, nullptr);  // the fault repeats under the previous handler
  (void)sig; (void)uc;
}

cudaError_t run_block() {
  for (auto &t : E.tls) memset(t.first, 0xff, t.second);  // static __shared__: garbage at block start
  memset(g_dyn_smem, 0xff, E.dyn_size);
  const dim3 b = g_block_dim;
  for (int i = 0; i < E.nthreads; i++) {
    Rec *r = E.pool[i].get();
    r->tid = uint3{(unsigned)i % b.x, (unsigned)i / b.x % b.y, (unsigned)i / (b.x * b.y)};
    r->lane = (unsigned)i % 32;
    r->warp = (unsigned)i / 32;
    r->linear = i;
    r->state = READY;
    r->copies.clear();
    r->committed = 0;
    r->grp = nullptr;
    fiber_init(&r->fiber, thread_main, r);
  }
  while (E.groups.size() < 2 * E.warps.size()) E.groups.emplace_back(new Group());
  E.free_groups.clear();
  E.free_groups.reserve(E.groups.size());
  for (auto &g : E.groups) E.free_groups.push_back(g.get());
  for (size_t w = 0; w < E.warps.size(); w++) {
    int live = std::min(32, E.nthreads - (int)w * 32);
    E.warps[w].exited = live == 32 ? 0u : ~((1u << live) - 1);
    E.warps[w].nopen = 0;
  }
  E.bar_arrived = 0;
  E.bar_waiters.clear();
  E.bar_waiters.reserve((size_t)E.nthreads);
  E.ndone = 0;
  E.failed = E.deadlock = false;
  E.rhead = E.rcount = 0;
  for (int i = 0; i < E.nthreads; i++) make_ready(E.pool[E.reverse ? E.nthreads - 1 - i : i].get());
  TSAN_RELEASE(&E.tsan_start);
  Rec *first = pop_ready();
  first->state = RUNNING;
  g_self = first;
  fiber_switch(&E.host, &first->fiber);
  TSAN_ACQUIRE(&E.tsan_end);
  g_self = nullptr;
  if (E.failed) {
    report(E.msg);
    return E.fail_code;
  }
  if (E.deadlock) {
    const LaunchSpec &s = *E.spec;
    std::string m = fmt("deadlock in kernel '%s' (launched at %s:%d), block (%u,%u,%u): no thread can make progress "
                        "(%d of %d threads finished). Wait sites:",
                        s.name, s.file, s.line, g_block_idx.x, g_block_idx.y, g_block_idx.z, E.ndone, E.nthreads);
    int lines = 0;
    for (int i = 0; i < E.nthreads && lines < 64;) {
      Rec *r = E.pool[i].get();
      auto same = [r](const Rec *o) {
        return o->state == r->state && o->line == r->line && o->wmask == r->wmask && !strcmp(o->file, r->file);
      };
      int j = i;
      while (j + 1 < E.nthreads && same(E.pool[j + 1].get())) j++;
      std::string who = i == j ? fmt("thread %d", i) : fmt("threads %d-%d", i, j);
      if (r->state == DONE) m += fmt("\n  %s: exited", who.c_str());
      else if (r->state == WAIT_BAR) m += fmt("\n  %s: waiting at __syncthreads() %s:%d", who.c_str(), r->file, r->line);
      else m += fmt("\n  %s: waiting at %s(mask 0x%08x) %s:%d", who.c_str(), r->what, r->wmask, r->file, r->line);
      lines++;
      i = j + 1;
    }
    report(m);
    return cudaErrorLaunchFailure;
  }
  return cudaSuccess;
}

cudaError_t run_kernel(const LaunchSpec &s) {
  setup_tls();
  E.spec = &s;
  E.nthreads = (int)(s.block.x * s.block.y * s.block.z);
  while ((int)E.pool.size() < E.nthreads) {
    std::unique_ptr<Rec> r(new Rec());
    std::string name = fmt("cusim thread %zu", E.pool.size());
    if (!fiber_alloc(&r->fiber, E.stack_bytes, name.c_str())) {
      report("cannot map fiber stacks (CUSIM_STACK_KB too large?)");
      return cudaErrorMemoryAllocation;
    }
    E.recs.push_back(r.get());
    E.pool.push_back(std::move(r));
  }
  E.ring.assign(E.nthreads, 0);
  E.warps.resize((E.nthreads + 31) / 32);
  E.dyn_size = s.smem;
  g_dyn_smem = E.arena_end - (s.smem + 127) / 128 * 128;
  const char *lo = getenv("CUSIM_LANE_ORDER");
  E.reverse = lo && !strcmp(lo, "reverse");
  g_grid_dim = s.grid;
  g_block_dim = s.block;
  cudaError_t rc = cudaSuccess;
  for (unsigned z = 0; z < s.grid.z && !rc; z++)
    for (unsigned y = 0; y < s.grid.y && !rc; y++)
      for (unsigned x = 0; x < s.grid.x && !rc; x++) {
        g_block_idx = uint3{x, y, z};
        rc = run_block();
      }
  E.spec = nullptr;
  return rc;
}

void executor_main() {
  executor_setup();
  std::unique_lock<std::mutex> lk(E.mu);
  for (;;) {
    E.cv.wait(lk, [] { return E.job != nullptr; });
    const LaunchSpec *s = E.job;
    lk.unlock();
    cudaError_t rc = run_kernel(*s);
    lk.lock();
    E.job = nullptr;
    E.result = rc;
    E.done = true;
    E.cv.notify_all();
  }
}

}  // namespace

// ---- entry points ----
void register_tls_module(void *(*anchor)()) {
  std::lock_guard<std::mutex> g(anchor_mu());
  anchors().push_back(anchor);
}

cudaError_t exec_kernel(const LaunchSpec &s) {
  std::unique_lock<std::mutex> lk(E.mu);
  if (!E.started) {
    std::thread(executor_main).detach();
    E.started = true;
  }
  E.job = &s;
  E.done = false;
  E.cv.notify_all();
  E.cv.wait(lk, [] { return E.done; });
  return E.result;
}

int block_sync(int op, int pred, const char *file, int line) {
  Rec *r = self();
  if (!r) { fprintf(stderr, "cusim: __syncthreads called outside a kernel\n"); abort(); }
  if (E.ndone > 0)
    fail(cudaErrorLaunchFailure,
         "__syncthreads() at %s:%d is reached after %d thread(s) of the block exited (e.g. an early return before "
         "the barrier): every thread of the block must reach every barrier",
         file, line, E.ndone);
  if (E.bar_arrived == 0) {
    E.bar_file = file; E.bar_line = line; E.bar_op = op; E.bar_acc = op == 2 ? 1 : 0;
  } else if (!same_site(file, line, E.bar_file, E.bar_line) || op != E.bar_op) {
    fail(cudaErrorLaunchFailure,
         "threads of the block wait at different barriers: %d thread(s) at %s:%d, this one at %s:%d (a barrier in "
         "divergent code)",
         E.bar_arrived, E.bar_file, E.bar_line, file, line);
  }
  if (op == 1) E.bar_acc += pred != 0;
  if (op == 2) E.bar_acc &= pred != 0;
  if (op == 3) E.bar_acc |= pred != 0;
  unsigned gen = E.bar_gen;
  (void)gen;
  TSAN_RELEASE(&E.tsan_bar[gen & 1]);
  if (++E.bar_arrived == E.nthreads) {
    E.bar_result = E.bar_acc;
    E.bar_arrived = 0;
    E.bar_gen++;
    int n = (int)E.bar_waiters.size();
    for (int i = 0; i < n; i++) make_ready(E.pool[E.bar_waiters[E.reverse ? n - 1 - i : i]].get());
    E.bar_waiters.clear();
  } else {
    r->state = WAIT_BAR; r->what = "__syncthreads"; r->file = file; r->line = line; r->wmask = 0;
    E.bar_waiters.push_back(r->linear);
    park(r);
  }
  TSAN_ACQUIRE(&E.tsan_bar[gen & 1]);
  return E.bar_result;
}

uint64_t warp_op(int kind, unsigned mask, uint64_t value, int a, int b, const char *file, int line) {
  LaneIn in;
  in.v = value; in.a = a; in.b = b;
  Group *g = warp_arrive(kind, mask, in, file, line);
  uint64_t r = g->res[self()->lane];
  warp_leave(g);
  return r;
}

void mma_m16n8k16(int bf16, float *d, const uint32_t *a, const uint32_t *b, const float *c, const char *file,
                  int line) {
  LaneIn in{};
  memcpy(in.w, a, 16);
  memcpy(in.w + 4, b, 8);
  memcpy(in.w + 6, c, 16);
  Group *g = warp_arrive(bf16 ? W_MMA_BF16 : W_MMA_F16, 0xffffffffu, in, file, line);
  memcpy(d, g->out[self()->lane], 16);
  warp_leave(g);
}

void ldmatrix(int nmat, int trans, uint32_t *r, const void *row, const char *file, int line) {
  LaneIn in{};
  in.ptr = row;
  Group *g = warp_arrive(W_LDMATRIX, 0xffffffffu, in, file, line, nmat, trans);
  for (int j = 0; j < nmat; j++) r[j] = g->out[self()->lane][j];
  warp_leave(g);
}

void cp_async(void *dst, const void *src, int cp, int src_size, int cg, const char *file, int line) {
  Rec *r = self();
  if (!r) { fprintf(stderr, "cusim: cp.async called outside a kernel\n"); abort(); }
  const char *op = cg ? "cp.async.cg" : "cp.async.ca";
  if (src_size < 0 || src_size > cp)
    fail(cudaErrorLaunchFailure, "%s at %s:%d: src-size %d is outside [0, %d]", op, file, line, src_size, cp);
  if ((uintptr_t)dst % (unsigned)cp || (uintptr_t)src % (unsigned)cp)
    fail(cudaErrorMisalignedAddress, "%s at %s:%d: dst %p / src %p not aligned to the copy size %d", op, file, line,
         dst, src, cp);
  if (!is_shared(dst, (size_t)cp))
    fail(cudaErrorIllegalAddress, "%s at %s:%d: destination %p is not shared memory (%s)", op, file, line, dst,
         describe(dst, (size_t)cp));
  if (src_size > 0 && !mem_kind(src, (size_t)src_size))
    fail(cudaErrorIllegalAddress, "%s at %s:%d: source %p is not device memory (%s)", op, file, line, src,
         describe(src, (size_t)src_size));
  memset(dst, 0xff, (size_t)cp);  // poison until the wait: an early read sees NaN
  r->copies.push_back(Copy{static_cast<unsigned char *>(dst), static_cast<const unsigned char *>(src), cp, src_size, -1});
}

void cp_async_commit(const char *, int) {
  Rec *r = self();
  for (Copy &c : r->copies)
    if (c.group < 0) c.group = r->committed;
  r->committed++;
}

void cp_async_wait(int n, const char *, int) {
  Rec *r = self();
  int limit = r->committed - n;
  size_t k = 0;
  for (Copy &c : r->copies) {
    if (c.group >= 0 && c.group < limit) {
      memcpy(c.dst, c.src, (size_t)c.src_size);
      memset(c.dst + c.src_size, 0, (size_t)(c.size - c.src_size));
    } else {
      r->copies[k++] = c;
    }
  }
  r->copies.resize(k);
}

void yield(const char *file, int line) {
  Rec *r = self();
  r->what = "__nanosleep"; r->file = file; r->line = line;
  make_ready(r);
  park(r);
}

void trap(const char *what, const char *file, int line) {
  fail(cudaErrorLaunchFailure, "%s at %s:%d", what, file, line);
}

unsigned active_mask() {
  Rec *r = self();
  return ~E.warps[r->warp].exited;
}

long long clock_ticks() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace cusim
