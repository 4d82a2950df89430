// fiber.h: user-mode contexts for simulated CUDA threads. A hand-written x86-64 switch (6
// callee-saved registers + stack pointer), mmapped stacks with a PROT_NONE guard page, and the
// annotations that ThreadSanitizer (CUSIM_TSAN) and AddressSanitizer need to follow the switches.
#ifndef CUSIM_FIBER_H
#define CUSIM_FIBER_H

#include <cstddef>

namespace cusim {

struct Fiber {
  void *sp = nullptr;           // saved stack pointer while switched out
  char *guard = nullptr;        // mmapped region: [guard, guard + page) PROT_NONE, then the stack
  char *lo = nullptr, *hi = nullptr;  // usable stack
  void (*fn)(void *) = nullptr;
  void *arg = nullptr;
  void *tsan = nullptr;         // ThreadSanitizer fiber (CUSIM_TSAN)
  void *asan_fake = nullptr;    // AddressSanitizer fake-stack handle
};

// Map a stack of `bytes` usable bytes (rounded up to pages) below a guard page.
bool fiber_alloc(Fiber *f, size_t bytes, const char *tsan_name);
// Make f start fn(arg) from the top of its stack at its next switch-in.
void fiber_init(Fiber *f, void (*fn)(void *), void *arg);
// Adopt the calling OS thread's own context as `host` (for switching back to it).
void fiber_host_init(Fiber *host);
// Save the current context into `from` and continue `to`. `dying`: `from` never resumes.
void fiber_switch(Fiber *from, Fiber *to, bool dying = false);
// Is addr inside f's guard page?
bool fiber_in_guard(const Fiber *f, const void *addr);
size_t page_size();

}  // namespace cusim

#endif
