// fiber.cpp: see fiber.h.
#include "fiber.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef CUSIM_TSAN
extern "C" {
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
void __tsan_set_fiber_name(void *fiber, const char *name);
}
#endif
#if defined(__SANITIZE_ADDRESS__)
#define CUSIM_ASAN 1
extern "C" {
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
}
#endif

// cusim_fiber_switch(void **save_sp, void *new_sp): push the callee-saved registers, store the stack
// pointer, load the other one, pop its registers and return into it. A new fiber's stack is laid
// out by fiber_init so that this "returns" into cusim_fiber_trampoline with r12 = Fiber*, r13 =
// the start function. (The x87/MXCSR control words are not switched: kernels never change them.)
__asm__(R"(
  .pushsection .text
  .globl cusim_fiber_switch
  .type cusim_fiber_switch, @function
  .p2align 4
cusim_fiber_switch:
  .cfi_startproc
  pushq %rbp
  .cfi_adjust_cfa_offset 8
  pushq %rbx
  .cfi_adjust_cfa_offset 8
  pushq %r12
  .cfi_adjust_cfa_offset 8
  pushq %r13
  .cfi_adjust_cfa_offset 8
  pushq %r14
  .cfi_adjust_cfa_offset 8
  pushq %r15
  .cfi_adjust_cfa_offset 8
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  .cfi_adjust_cfa_offset -8
  popq %r14
  .cfi_adjust_cfa_offset -8
  popq %r13
  .cfi_adjust_cfa_offset -8
  popq %r12
  .cfi_adjust_cfa_offset -8
  popq %rbx
  .cfi_adjust_cfa_offset -8
  popq %rbp
  .cfi_adjust_cfa_offset -8
  ret
  .cfi_endproc
  .size cusim_fiber_switch, .-cusim_fiber_switch

  .globl cusim_fiber_trampoline
  .type cusim_fiber_trampoline, @function
  .p2align 4
cusim_fiber_trampoline:
  .cfi_startproc
  .cfi_undefined rip
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size cusim_fiber_trampoline, .-cusim_fiber_trampoline
  .popsection
)");

extern "C" void cusim_fiber_switch(void **save_sp, void *new_sp);
extern "C" void cusim_fiber_trampoline();

namespace cusim {

size_t page_size() {
  static size_t ps = (size_t)sysconf(_SC_PAGESIZE);
  return ps;
}

static void fiber_start(void *p) {
  Fiber *f = static_cast<Fiber *>(p);
#ifdef CUSIM_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  f->fn(f->arg);
  __builtin_trap();  // fn must switch away for good, never return
}

bool fiber_alloc(Fiber *f, size_t bytes, const char *tsan_name) {
  size_t ps = page_size(), n = (bytes + ps - 1) / ps * ps;
  void *m = mmap(nullptr, n + ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                 -1, 0);
  if (m == MAP_FAILED) return false;
  if (mprotect(m, ps, PROT_NONE) != 0) { munmap(m, n + ps); return false; }
  f->guard = static_cast<char *>(m);
  f->lo = f->guard + ps;
  f->hi = f->lo + n;
  // Stack tops a whole number of pages apart would all fall into the same cache sets: stagger them.
  static unsigned color = 0;
  f->hi -= (color++ % 64) * 64;
#ifdef CUSIM_TSAN
  f->tsan = __tsan_create_fiber(0);
  __tsan_set_fiber_name(f->tsan, tsan_name);
#else
  (void)tsan_name;
#endif
  return true;
}

void fiber_init(Fiber *f, void (*fn)(void *), void *arg) {
  f->fn = fn;
  f->arg = arg;
#ifdef CUSIM_ASAN  // frames abandoned by an earlier use of this stack leave poisoned shadow
  __asan_unpoison_memory_region(f->lo, (size_t)(f->hi - f->lo));
#endif
  uintptr_t top = (uintptr_t)f->hi & ~(uintptr_t)15;
  void **sp = reinterpret_cast<void **>(top);
  *--sp = reinterpret_cast<void *>(&cusim_fiber_trampoline);  // "return address" (top - 8)
  *--sp = nullptr;                                             // rbp
  *--sp = nullptr;                                             // rbx
  *--sp = f;                                                   // r12: argument
  *--sp = reinterpret_cast<void *>(&fiber_start);              // r13: function
  *--sp = nullptr;                                             // r14
  *--sp = nullptr;                                             // r15
  f->sp = sp;
}

void fiber_host_init(Fiber *host) {
  pthread_attr_t a;
  void *lo = nullptr;
  size_t sz = 0;
  if (pthread_getattr_np(pthread_self(), &a) == 0) {
    pthread_attr_getstack(&a, &lo, &sz);
    pthread_attr_destroy(&a);
  }
  host->lo = static_cast<char *>(lo);
  host->hi = host->lo + sz;
#ifdef CUSIM_TSAN
  host->tsan = __tsan_get_current_fiber();
#endif
}

void fiber_switch(Fiber *from, Fiber *to, bool dying) {
#ifdef CUSIM_ASAN
  __sanitizer_start_switch_fiber(dying ? nullptr : &from->asan_fake, to->lo, (size_t)(to->hi - to->lo));
#else
  (void)dying;
#endif
#ifdef CUSIM_TSAN
  __tsan_switch_to_fiber(to->tsan, 1 /* __tsan_switch_to_fiber_no_sync */);
#endif
  cusim_fiber_switch(&from->sp, to->sp);
#ifdef CUSIM_ASAN
  __sanitizer_finish_switch_fiber(from->asan_fake, nullptr, nullptr);
#endif
}

bool fiber_in_guard(const Fiber *f, const void *addr) {
  const char *p = static_cast<const char *>(addr);
  return f->guard && p >= f->guard && p < f->guard + page_size();
}

}  // namespace cusim

// Ping-pong between two fibers; returns nanoseconds per switch.
namespace {
struct PingPong { cusim::Fiber host, a, b; long n; };
PingPong *g_pp;
void pp_a(void *) {
  for (long i = 0; i < g_pp->n; i++) cusim::fiber_switch(&g_pp->a, &g_pp->b);
  cusim::fiber_switch(&g_pp->a, &g_pp->host, true);
}
void pp_b(void *) {
  for (;;) cusim::fiber_switch(&g_pp->b, &g_pp->a);
}
}  // namespace

extern "C" double cusim_measure_switch_ns(int iterations) {
  static PingPong pp;
  g_pp = &pp;
  if (!pp.a.guard && (!cusim::fiber_alloc(&pp.a, 65536, "cusim ping") || !cusim::fiber_alloc(&pp.b, 65536, "cusim pong")))
    return -1;
  cusim::fiber_host_init(&pp.host);
  pp.n = iterations;
  cusim::fiber_init(&pp.a, pp_a, nullptr);
  cusim::fiber_init(&pp.b, pp_b, nullptr);
  auto t0 = std::chrono::steady_clock::now();
  cusim::fiber_switch(&pp.host, &pp.a);
  auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / (2.0 * iterations + 1);
}
