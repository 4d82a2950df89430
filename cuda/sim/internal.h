// internal.h: what the simulator's parts (exec, runtime, cublas, nccl) share. Not for kernels.
#ifndef CUSIM_INTERNAL_H
#define CUSIM_INTERNAL_H

#define CUSIM_INTERNAL 1
#include "cusim.h"

#include <condition_variable>
#include <cstdarg>
#include <functional>
#include <mutex>
#include <string>

namespace cusim {

using Lock = std::unique_lock<std::mutex>;

std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
std::string vfmt(const char *f, va_list ap);
// Print "cusim: <msg>" on stderr, remember it and call the test hook.
void report(const std::string &msg);
int env_int(const char *name, long long def, long long *out = nullptr);

// ---- executor (exec.cpp) ----
// Run every block of a kernel on the executor thread; returns cudaSuccess or the (sticky) error.
// The caller holds the runtime lock, which keeps the memory registry stable meanwhile.
cudaError_t exec_kernel(const LaunchSpec &s);

// ---- runtime (runtime.cpp) ----
enum MemKind { MEM_NONE = 0, MEM_DEVICE = 1, MEM_HOST = 2 /* pinned or registered host memory */ };
// Kind of [p, p+n) if it lies inside one allocation (n == 0: p may be its end), else MEM_NONE.
int mem_kind(const void *p, size_t n, int *device = nullptr);
// A description of p for error messages ("inside a 4096-byte cudaMalloc block at 0x..", "host memory").
std::string mem_describe(const void *p, size_t n);

Lock lock();                      // the runtime's one lock
std::condition_variable &cv();    // notified on every state change
struct Stream;
int current_device();
cudaError_t sticky_error(int dev);
void set_sticky(int dev, cudaError_t e);
// Resolve a stream handle (0, cudaStreamLegacy, cudaStreamPerThread: the device's default stream).
Stream *get_stream(cudaStream_t s, cudaError_t *err);
int stream_device(const Stream *s);
// Append an operation; returns its position (1-based) in the stream.
uint64_t enqueue(Lock &lk, Stream *s, std::function<void(Lock &)> fn);
// Execute s's operations up to and including position `upto`.
void flush(Lock &lk, Stream *s, uint64_t upto);
uint64_t stream_enqueued(const Stream *s);
uint64_t stream_executed(const Stream *s);

}  // namespace cusim

#endif
