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
#include <thread>
#include <vector>

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

// ---- stream capture (runtime.cpp hooks, graph.cpp API) ----
// A capture sequence on one stream: while it is active, enqueue() appends the stream's operations
// here instead of running them; cudaStreamEndCapture turns them into a graph.
struct Capture {
  Stream *s = nullptr;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id owner;  // the thread that began it
  unsigned long long id = 0;
  bool invalid = false;   // a prohibited call invalidated it: cudaStreamEndCapture fails
  std::string why;        // what invalidated it
  std::vector<std::function<void(Lock &)>> nodes;  // in stream order
};
Capture *stream_capture(const Stream *s);  // the stream's active capture, or nullptr
void set_stream_capture(Stream *s, Capture *c);
// Marks `c` invalid (first reason wins) and reports it.
void invalidate_capture(Capture *c, const std::string &why);
// For a stream-ordered call on `s`: cudaErrorStreamCaptureInvalidated if s's capture was
// invalidated; cudaErrorStreamCaptureImplicit (invalidating the captures concerned) if s is the
// legacy default stream while a blocking stream of its device captures; else cudaSuccess.
cudaError_t capture_gate(Lock &lk, Stream *s, const char *api);
// For a "potentially unsafe" call (cudaMalloc, cudaFree, synchronous copies...): prohibited when
// this thread captures in a mode other than relaxed, or (in this thread's global mode) another
// thread captures in global mode, as cudaThreadExchangeStreamCaptureMode documents. Then the
// capture is invalidated and cudaErrorStreamCaptureUnsupported returned.
cudaError_t unsafe_call(Lock &lk, const char *api);
// For a synchronisation that waits for `s` (or every stream of its device when s is the device's
// default stream and `whole_device`): waiting for a capturing stream is never allowed.
cudaError_t sync_gate(Lock &lk, Stream *s, bool whole_device, const char *api);

}  // namespace cusim

#endif
