// runtime.cpp: a subset of the CUDA runtime API (NVIDIA's prototypes, cuda_runtime_api.h).
// Device memory is host memory in a registry (so copies and kernel arguments are validated);
// streams execute DEFERRED, at a synchronisation point, so a missing sync shows stale data; errors
// of a kernel are sticky for its device; A100/H100 properties (CUSIM_DEVICE=a100|h100).
#include "internal.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <thread>
#include <vector>

namespace cusim {

struct Stream {
  int device = 0;
  bool blocking = true, is_default = false;
  int priority = 0;
  std::deque<std::function<void(Lock &)>> q;
  uint64_t enqueued = 0, executed = 0;
  bool busy = false;
  std::thread::id owner;
  Capture *cap = nullptr;  // the active stream capture (graph.cpp), or none
};

namespace {

struct Event {
  Stream *s = nullptr;
  uint64_t pos = 0, gen = 0;  // gen: which cudaEventRecord the pending timestamp belongs to
  bool timing = true;
  bool captured = false;      // last recorded inside a stream capture (a graph node, not a time)
  double t_ms = -1;
};

struct Alloc { size_t size; int device; int kind; bool owned; };

struct Device {
  int id = 0;
  cudaDeviceProp prop{};
  size_t total = 0, used = 0;
  cudaError_t sticky = cudaSuccess;
  Stream *def = nullptr;
  std::vector<Stream *> streams;
  std::map<const void *, int> max_dyn_smem;
  std::map<int, size_t> limits;
};

struct Runtime {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Device> devs;
  std::map<uintptr_t, Alloc> allocs;
  std::set<Stream *> streams;
  std::vector<Stream *> destroyed;  // kept: events and queued waits may still point at them
  std::set<Event *> events;
  bool poison = true, check_args = true;
};
Runtime &rt() {  // never destroyed: other threads may still use it at exit
  static Runtime *r = new Runtime();
  return *r;
}
#define R rt()
std::once_flag g_once;

thread_local int t_dev = 0;
thread_local cudaError_t t_last = cudaSuccess;
thread_local cudaStreamCaptureMode t_capture_mode = cudaStreamCaptureModeGlobal;  // this thread's

std::mutex g_report_mu;
std::string g_last_message;
void (*g_hook)(const char *, void *) = nullptr;
void *g_hook_user = nullptr;

void fill_props(cudaDeviceProp &p, bool h100, size_t total, int id) {
  memset(&p, 0, sizeof p);
  snprintf(p.name, sizeof p.name, "%s", h100 ? "NVIDIA H100 80GB HBM3 (cusim)" : "NVIDIA A100-SXM4-80GB (cusim)");
  for (int i = 0; i < 16; i++) p.uuid.bytes[i] = (char)(0x40 + id * 16 + i);
  p.totalGlobalMem = total;
  p.sharedMemPerBlock = 49152;
  p.regsPerBlock = 65536;
  p.warpSize = 32;
  p.memPitch = 2147483647;
  p.maxThreadsPerBlock = 1024;
  p.maxThreadsDim[0] = 1024; p.maxThreadsDim[1] = 1024; p.maxThreadsDim[2] = 64;
  p.maxGridSize[0] = 2147483647; p.maxGridSize[1] = 65535; p.maxGridSize[2] = 65535;
  p.totalConstMem = 65536;
  p.major = h100 ? 9 : 8;
  p.minor = 0;
  p.textureAlignment = 512;
  p.texturePitchAlignment = 32;
  p.multiProcessorCount = h100 ? 132 : 108;
  p.canMapHostMemory = 1;
  p.concurrentKernels = 1;
  p.ECCEnabled = 1;
  p.pciBusID = 0x10 + id;
  p.asyncEngineCount = h100 ? 3 : 3;
  p.unifiedAddressing = 1;
  p.memoryBusWidth = 5120;
  p.l2CacheSize = h100 ? 50 * 1024 * 1024 : 40 * 1024 * 1024;
  p.persistingL2CacheMaxSize = h100 ? 32505856 : 31457280;
  p.maxThreadsPerMultiProcessor = 2048;
  p.streamPrioritiesSupported = 1;
  p.globalL1CacheSupported = 1;
  p.localL1CacheSupported = 1;
  p.sharedMemPerMultiprocessor = h100 ? 233472 : 167936;
  p.regsPerMultiprocessor = 65536;
  p.managedMemory = 1;
  p.computePreemptionSupported = 1;
  p.cooperativeLaunch = 1;
  p.sharedMemPerBlockOptin = h100 ? 232448 : 166912;
  p.maxBlocksPerMultiProcessor = 32;
  p.reservedSharedMemPerBlock = 1024;
  p.hostRegisterSupported = 1;
  p.memoryPoolsSupported = 1;
  p.clusterLaunch = h100 ? 1 : 0;
}

void init() {
  std::call_once(g_once, [] {
    const char *d = getenv("CUSIM_DEVICE");
    bool h100 = d && (!strcmp(d, "h100") || !strcmp(d, "H100"));
    if (d && !h100 && strcmp(d, "a100") && strcmp(d, "A100"))
      fprintf(stderr, "cusim: CUSIM_DEVICE=%s is not a100 or h100; using a100\n", d);
    long long mem = 80LL << 30, n = 1, flag = 1;
    env_int("CUSIM_MEM_BYTES", mem, &mem);
    env_int("CUSIM_DEVICE_COUNT", 1, &n);
    env_int("CUSIM_POISON", 1, &flag);
    R.poison = flag != 0;
    env_int("CUSIM_CHECK_ARGS", 1, &flag);
    R.check_args = flag != 0;
    R.devs.resize((size_t)std::max(0LL, n));
    for (size_t i = 0; i < R.devs.size(); i++) {
      Device &dv = R.devs[i];
      dv.id = (int)i;
      dv.total = (size_t)mem;
      fill_props(dv.prop, h100, dv.total, (int)i);
      dv.def = new Stream();
      dv.def->device = (int)i;
      dv.def->is_default = true;
      dv.streams.push_back(dv.def);
    }
  });
}

cudaError_t ret(cudaError_t e) {
  if (e != cudaSuccess) t_last = e;
  return e;
}

cudaError_t api_fail(cudaError_t e, const char *api, const char *f, ...) __attribute__((format(printf, 3, 4)));
cudaError_t api_fail(cudaError_t e, const char *api, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  std::string m = vfmt(f, ap);
  va_end(ap);
  report(fmt("%s: %s", api, m.c_str()));
  return ret(e);
}

Device *cur(cudaError_t *e) {
  init();
  if (t_dev < 0 || t_dev >= (int)R.devs.size()) {
    *e = cudaErrorNoDevice;
    return nullptr;
  }
  Device *d = &R.devs[(size_t)t_dev];
  *e = d->sticky;
  return d;
}

#define CUR_DEVICE(d)                       \
  init();                                   \
  Lock lk(R.mu);                            \
  cudaError_t e_ = cudaSuccess;             \
  Device *d = cur(&e_);                     \
  if (e_ != cudaSuccess) return ret(e_);    \
  (void)d

const Alloc *find_alloc(const void *p, uintptr_t *base) {
  uintptr_t a = (uintptr_t)p;
  auto it = R.allocs.upper_bound(a);
  if (it == R.allocs.begin()) return nullptr;
  --it;
  if (a >= it->first + std::max<size_t>(it->second.size, 1)) return nullptr;
  *base = it->first;
  return &it->second;
}

Event *get_event(cudaEvent_t e) {
  Event *ev = reinterpret_cast<Event *>(e);
  return R.events.count(ev) ? ev : nullptr;
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void flush_device(Lock &lk, Device &d) {
  for (size_t i = 0; i < d.streams.size(); i++) flush(lk, d.streams[i], d.streams[i]->enqueued);
}

const char *kind_name(int k) { return k == MEM_DEVICE ? "device" : k == MEM_HOST ? "pinned host" : "host"; }

// Validate a copy's pointers against its kind; on success returns cudaSuccess.
cudaError_t check_copy(const char *api, void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
  if (n == 0) return cudaSuccess;
  int dk = mem_kind(dst, n), sk = mem_kind(src, n);
  uintptr_t base;
  bool dst_dev_prefix = find_alloc(dst, &base) && find_alloc(dst, &base)->kind == MEM_DEVICE;
  bool src_dev_prefix = find_alloc(src, &base) && find_alloc(src, &base)->kind == MEM_DEVICE;
  if (dk != MEM_DEVICE && dst_dev_prefix)
    return api_fail(cudaErrorInvalidValue, api, "destination range [%p, +%zu) overruns its allocation (%s)", dst, n,
                    mem_describe(dst, n).c_str());
  if (sk != MEM_DEVICE && src_dev_prefix)
    return api_fail(cudaErrorInvalidValue, api, "source range [%p, +%zu) overruns its allocation (%s)", src, n,
                    mem_describe(src, n).c_str());
  bool dd = dk == MEM_DEVICE, sd = sk == MEM_DEVICE;
  bool ok = kind == cudaMemcpyDefault || (kind == cudaMemcpyHostToDevice && dd && !sd) ||
            (kind == cudaMemcpyDeviceToHost && !dd && sd) || (kind == cudaMemcpyDeviceToDevice && dd && sd) ||
            (kind == cudaMemcpyHostToHost && !dd && !sd);
  if (!ok) {
    static const char *names[] = {"HostToHost", "HostToDevice", "DeviceToHost", "DeviceToDevice", "Default"};
    return api_fail(cudaErrorInvalidValue, api, "cudaMemcpy%s, but the destination %p is %s memory and the source %p is %s memory",
                    (unsigned)kind < 5 ? names[kind] : "?", dst, kind_name(dk), src, kind_name(sk));
  }
  return cudaSuccess;
}

// Copy on a stream. Pageable host sources are staged at the call and copies into pageable host
// memory complete before the call returns, as CUDA documents; copies between device and pinned
// memory happen when the stream gets there (a host read without a synchronisation sees stale data).
cudaError_t copy_async(Lock &lk, const char *api, void *dst, const void *src, size_t n, cudaMemcpyKind kind,
                       Stream *s, bool sync) {
  if (cudaError_t e = check_copy(api, dst, src, n, kind)) return e;
  if (cudaError_t e = capture_gate(lk, s, api)) return ret(e);
  if (n == 0) return cudaSuccess;
  // A graph replays a copy from its pointers, so cusim's staging of pageable sources (and the
  // synchronous completion into pageable destinations) cannot be part of one: capture copies
  // between device and pinned memory only.
  if (s->cap && (mem_kind(src, n) == MEM_NONE || mem_kind(dst, n) == MEM_NONE)) {
    invalidate_capture(s->cap, fmt("%s of %zu bytes from/to pageable host memory during stream capture", api, n));
    return api_fail(cudaErrorStreamCaptureUnsupported, api,
                    "pageable host memory in a stream capture (use pinned memory: cudaMallocHost)");
  }
  std::shared_ptr<std::vector<unsigned char>> staged;
  if (mem_kind(src, n) == MEM_NONE) {
    staged = std::make_shared<std::vector<unsigned char>>((const unsigned char *)src, (const unsigned char *)src + n);
    src = staged->data();
  }
  if (mem_kind(dst, n) == MEM_NONE) sync = true;
  int dev = s->device;
  uint64_t pos = enqueue(lk, s, [dst, src, n, staged, dev](Lock &) {
    if (!R.devs[(size_t)dev].sticky) memmove(dst, src, n);
  });
  if (sync) {
    flush(lk, s, pos);
    if (cudaError_t e = R.devs[(size_t)s->device].sticky) return ret(e);
  }
  return cudaSuccess;
}

cudaError_t memset_async(const char *api, void *p, int v, size_t n, Stream *s, Lock &lk) {
  if (n && mem_kind(p, n) != MEM_DEVICE)
    return api_fail(cudaErrorInvalidValue, api, "[%p, +%zu) is not device memory (%s)", p, n, mem_describe(p, n).c_str());
  if (cudaError_t e = capture_gate(lk, s, api)) return ret(e);
  int dev = s->device;
  enqueue(lk, s, [p, v, n, dev](Lock &) {
    if (!R.devs[(size_t)dev].sticky) memset(p, v, n);
  });
  return cudaSuccess;
}

}  // namespace

// ---- shared with exec / cublas / nccl ----
std::string vfmt(const char *f, va_list ap) {
  char buf[1024];
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(buf, sizeof buf, f, ap);
  if (n < (int)sizeof buf) { va_end(ap2); return std::string(buf, n > 0 ? (size_t)n : 0); }
  std::string s((size_t)n, '\0');
  vsnprintf(&s[0], (size_t)n + 1, f, ap2);
  va_end(ap2);
  return s;
}

std::string fmt(const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  std::string s = vfmt(f, ap);
  va_end(ap);
  return s;
}

void report(const std::string &msg) {
  std::lock_guard<std::mutex> g(g_report_mu);
  fprintf(stderr, "cusim: %s\n", msg.c_str());
  fflush(stderr);
  g_last_message = msg;
  if (g_hook) g_hook(msg.c_str(), g_hook_user);
}

int env_int(const char *name, long long def, long long *out) {
  const char *s = getenv(name);
  long long v = def;
  if (s && *s) {
    char *end;
    v = strtoll(s, &end, 0);
    if (*end == 'K' || *end == 'k') v <<= 10;
    else if (*end == 'M' || *end == 'm') v <<= 20;
    else if (*end == 'G' || *end == 'g') v <<= 30;
  }
  if (out) *out = v;
  return (int)v;
}

int mem_kind(const void *p, size_t n, int *device) {
  uintptr_t base;
  const Alloc *a = find_alloc(p, &base);
  if (!a) {  // p may be one past the end of an allocation when n == 0
    if (n == 0 && p) {
      const Alloc *b = find_alloc((const char *)p - 1, &base);
      if (b && (uintptr_t)p == base + b->size) { if (device) *device = b->device; return b->kind; }
    }
    return MEM_NONE;
  }
  if ((uintptr_t)p + n > base + a->size) return MEM_NONE;
  if (device) *device = a->device;
  return a->kind;
}

std::string mem_describe(const void *p, size_t n) {
  uintptr_t base;
  const Alloc *a = find_alloc(p, &base);
  if (!a) return "not a cudaMalloc'ed, pinned or registered block: host memory, or freed";
  return fmt("%zu bytes at offset %zu of a %zu-byte %s block at %p%s", n, (size_t)((uintptr_t)p - base), a->size,
             a->kind == MEM_DEVICE ? "device" : "pinned host", (void *)base,
             (uintptr_t)p + n > base + a->size ? ", past its end" : "");
}

Lock lock() { init(); return Lock(R.mu); }
std::condition_variable &cv() { return R.cv; }
int current_device() { init(); return t_dev; }
cudaError_t sticky_error(int dev) { return dev >= 0 && dev < (int)R.devs.size() ? R.devs[(size_t)dev].sticky : cudaErrorInvalidDevice; }
void set_sticky(int dev, cudaError_t e) {
  if (dev >= 0 && dev < (int)R.devs.size() && R.devs[(size_t)dev].sticky == cudaSuccess) R.devs[(size_t)dev].sticky = e;
}
int stream_device(const Stream *s) { return s->device; }
uint64_t stream_enqueued(const Stream *s) { return s->enqueued; }
uint64_t stream_executed(const Stream *s) { return s->executed; }

Stream *get_stream(cudaStream_t h, cudaError_t *err) {
  init();
  *err = cudaSuccess;
  if (h == nullptr || h == cudaStreamLegacy || h == cudaStreamPerThread) {
    if (t_dev < 0 || t_dev >= (int)R.devs.size()) { *err = cudaErrorNoDevice; return nullptr; }
    return R.devs[(size_t)t_dev].def;
  }
  Stream *s = reinterpret_cast<Stream *>(h);
  if (!R.streams.count(s)) {
    report(fmt("stream %p is not a live stream (destroyed, or never created)", (void *)h));
    *err = cudaErrorInvalidResourceHandle;
    return nullptr;
  }
  return s;
}

uint64_t enqueue(Lock &lk, Stream *s, std::function<void(Lock &)> fn) {
  if (s->cap) {  // recorded into the capture's graph, not run (dropped once it is invalid)
    if (!s->cap->invalid) s->cap->nodes.push_back(std::move(fn));
    return s->enqueued;
  }
  Device &d = R.devs[(size_t)s->device];
  auto wait_on = [s](Stream *t) {
    uint64_t pos = t->enqueued;
    s->q.push_back([t, pos](Lock &l) { flush(l, t, pos); });
    s->enqueued++;
  };
  // the legacy default stream synchronises with every blocking stream of its device
  if (s->is_default) {
    for (Stream *t : d.streams)
      if (t != s && t->blocking && t->enqueued > t->executed) wait_on(t);
  } else if (s->blocking && d.def->enqueued > d.def->executed) {
    wait_on(d.def);
  }
  s->q.push_back(std::move(fn));
  s->enqueued++;
  (void)lk;
  R.cv.notify_all();
  return s->enqueued;
}

void flush(Lock &lk, Stream *s, uint64_t upto) {
  while (s->executed < upto) {
    if (s->busy) {
      if (s->owner == std::this_thread::get_id()) {
        report(fmt("stream %p waits for its own later work (a dependency cycle through events)", (void *)s));
        set_sticky(s->device, cudaErrorLaunchFailure);
        return;
      }
      R.cv.wait(lk);
      continue;
    }
    s->busy = true;
    s->owner = std::this_thread::get_id();
    std::function<void(Lock &)> op = std::move(s->q.front());
    s->q.pop_front();
    op(lk);  // ops check the device's sticky error themselves where it matters
    s->executed++;
    s->busy = false;
    R.cv.notify_all();
  }
}

// ---- stream capture: the rules of cudaStreamBeginCapture / cudaThreadExchangeStreamCaptureMode ----
Capture *stream_capture(const Stream *s) { return s->cap; }
void set_stream_capture(Stream *s, Capture *c) { s->cap = c; }

void invalidate_capture(Capture *c, const std::string &why) {
  if (c->invalid) return;
  c->invalid = true;
  c->why = why;
  c->nodes.clear();
  report(fmt("stream capture %llu on stream %p invalidated: %s", c->id, (void *)c->s, why.c_str()));
}

cudaError_t capture_gate(Lock &, Stream *s, const char *api) {
  if (s->cap && s->cap->invalid) return cudaErrorStreamCaptureInvalidated;
  if (s->is_default) {  // the legacy stream would wait for (and be waited on by) blocking streams
    bool hit = false;
    for (Stream *t : R.devs[(size_t)s->device].streams)
      if (t->cap && t->blocking) {
        invalidate_capture(t->cap, fmt("%s on the legacy default stream: an implicit dependency on the capture", api));
        hit = true;
      }
    if (hit) {
      report(fmt("%s: the legacy default stream while a blocking stream captures (cudaErrorStreamCaptureImplicit)", api));
      return cudaErrorStreamCaptureImplicit;
    }
  }
  return cudaSuccess;
}

cudaError_t unsafe_call(Lock &, const char *api) {
  const std::thread::id me = std::this_thread::get_id();
  bool hit = false;
  for (Stream *t : R.streams) {
    Capture *c = t->cap;
    if (!c) continue;
    bool mine = c->owner == me && c->mode != cudaStreamCaptureModeRelaxed &&
                t_capture_mode != cudaStreamCaptureModeRelaxed;
    bool other_global = c->owner != me && c->mode == cudaStreamCaptureModeGlobal &&
                        t_capture_mode == cudaStreamCaptureModeGlobal;
    if (mine || other_global) {
      invalidate_capture(c, fmt("%s, a potentially unsafe call, during the capture", api));
      hit = true;
    }
  }
  if (!hit) return cudaSuccess;
  report(fmt("%s: not permitted while a stream captures (cudaErrorStreamCaptureUnsupported)", api));
  return cudaErrorStreamCaptureUnsupported;
}

cudaError_t sync_gate(Lock &, Stream *s, bool whole_device, const char *api) {
  bool hit = false;
  for (Stream *t : R.devs[(size_t)s->device].streams)
    if (t->cap && (t == s || whole_device)) {
      invalidate_capture(t->cap, fmt("%s waits for a capturing stream", api));
      hit = true;
    }
  if (!hit) return cudaSuccess;
  report(fmt("%s: cannot wait for a stream that is capturing (cudaErrorStreamCaptureUnsupported)", api));
  return cudaErrorStreamCaptureUnsupported;
}

cudaError_t submit_launch(LaunchSpec &spec) {
  struct Guard {  // frees the closure unless the launch is enqueued
    LaunchSpec *s;
    ~Guard() { if (s) s->destroy(s->closure); }
  } guard{&spec};
  init();
  Lock lk(R.mu);
  cudaError_t e = cudaSuccess;
  Device *d = cur(&e);
  if (e) return ret(e);
  const dim3 b = spec.block, g = spec.grid;
  unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
  std::string site = fmt("LAUNCH(%s) at %s:%d", spec.name, spec.file, spec.line);
  // CUDA 13 on an H100 answers cudaErrorInvalidValue for an empty block or grid and for one over the
  // limits (checked by tests/test_negative.cu on hardware).
  if (!b.x || !b.y || !b.z || !g.x || !g.y || !g.z)
    return api_fail(cudaErrorInvalidValue, site.c_str(), "empty launch: grid (%u,%u,%u), block (%u,%u,%u)",
                    g.x, g.y, g.z, b.x, b.y, b.z);
  if (b.x > 1024 || b.y > 1024 || b.z > 64 || threads > 1024)
    return api_fail(cudaErrorInvalidValue, site.c_str(),
                    "block (%u,%u,%u) = %llu threads: the limits are 1024 threads and 1024x1024x64", b.x, b.y, b.z,
                    threads);
  if (g.x > 2147483647u || g.y > 65535 || g.z > 65535)
    return api_fail(cudaErrorInvalidValue, site.c_str(), "grid (%u,%u,%u): the limits are 2147483647 x 65535 x 65535",
                    g.x, g.y, g.z);
  auto it = d->max_dyn_smem.find(spec.key);
  size_t limit = it == d->max_dyn_smem.end() ? 49152 : (size_t)it->second;
  if (spec.smem > limit)
    return api_fail(cudaErrorInvalidValue, site.c_str(),
                    "%zu bytes of dynamic shared memory, over the kernel's limit of %zu; above 48 KB call "
                    "cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) first (at most "
                    "%zu on %s)",
                    spec.smem, limit, d->prop.sharedMemPerBlockOptin, d->prop.name);
  Stream *s = get_stream(spec.stream, &e);
  if (!s) return ret(e);
  if (s->device != t_dev)
    return api_fail(cudaErrorInvalidResourceHandle, site.c_str(), "stream belongs to device %d, current device is %d",
                    s->device, t_dev);
  if (cudaError_t ge = capture_gate(lk, s, site.c_str())) return ret(ge);
  if (R.check_args)
    for (int i = 0; i < spec.nptr; i++) {
      const void *p = spec.ptr_args[i];
      int dev = -1;
      if (p && !mem_kind(p, 0, &dev)) {
        report(fmt("%s: pointer argument %d (%p) is not device memory (%s); set CUSIM_CHECK_ARGS=0 if it is never "
                   "dereferenced",
                   site.c_str(), spec.ptr_arg_index[i], p, mem_describe(p, 0).c_str()));
        set_sticky(t_dev, cudaErrorIllegalAddress);
        return ret(cudaErrorIllegalAddress);
      }
    }
  std::shared_ptr<LaunchSpec> sp(new LaunchSpec(spec), [](LaunchSpec *x) { x->destroy(x->closure); delete x; });
  guard.s = nullptr;
  int dev = t_dev;
  enqueue(lk, s, [sp, dev](Lock &) {
    if (R.devs[(size_t)dev].sticky) return;  // a dead context runs nothing
    if (cudaError_t rc = exec_kernel(*sp)) set_sticky(dev, rc);
  });
  return cudaSuccess;
}

}  // namespace cusim

using namespace cusim;

extern "C" {

void cusim_set_error_hook(void (*hook)(const char *, void *), void *user) {
  std::lock_guard<std::mutex> g(g_report_mu);
  g_hook = hook;
  g_hook_user = user;
}

const char *cusim_last_error_message(void) {
  std::lock_guard<std::mutex> g(g_report_mu);
  return g_last_message.c_str();
}

}  // extern "C"

cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode *mode) {
  if (!mode || (*mode != cudaStreamCaptureModeGlobal && *mode != cudaStreamCaptureModeThreadLocal &&
                *mode != cudaStreamCaptureModeRelaxed))
    return api_fail(cudaErrorInvalidValue, "cudaThreadExchangeStreamCaptureMode", "mode %d is not a capture mode",
                    mode ? (int)*mode : -1);
  std::swap(*mode, t_capture_mode);
  return cudaSuccess;
}

// ---- devices ----
cudaError_t cudaGetDeviceCount(int *count) {
  init();
  *count = (int)R.devs.size();
  return R.devs.empty() ? ret(cudaErrorNoDevice) : cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  init();
  if (device < 0 || device >= (int)R.devs.size())
    return api_fail(cudaErrorInvalidDevice, "cudaSetDevice", "device %d does not exist (%zu devices; CUSIM_DEVICE_COUNT)",
                    device, R.devs.size());
  t_dev = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device) {
  init();
  *device = t_dev;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
  init();
  if (device < 0 || device >= (int)R.devs.size()) return ret(cudaErrorInvalidDevice);
  *prop = R.devs[(size_t)device].prop;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device) {
  init();
  if (device < 0 || device >= (int)R.devs.size()) return ret(cudaErrorInvalidDevice);
  const cudaDeviceProp &p = R.devs[(size_t)device].prop;
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxBlockDimX: *value = p.maxThreadsDim[0]; break;
    case cudaDevAttrMaxBlockDimY: *value = p.maxThreadsDim[1]; break;
    case cudaDevAttrMaxBlockDimZ: *value = p.maxThreadsDim[2]; break;
    case cudaDevAttrMaxGridDimX: *value = p.maxGridSize[0]; break;
    case cudaDevAttrMaxGridDimY: *value = p.maxGridSize[1]; break;
    case cudaDevAttrMaxGridDimZ: *value = p.maxGridSize[2]; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)p.sharedMemPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)p.sharedMemPerBlockOptin; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = (int)p.sharedMemPerMultiprocessor; break;
    case cudaDevAttrWarpSize: *value = p.warpSize; break;
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
    case cudaDevAttrL2CacheSize: *value = p.l2CacheSize; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *value = p.maxThreadsPerMultiProcessor; break;
    case cudaDevAttrMaxRegistersPerBlock: *value = p.regsPerBlock; break;
    case cudaDevAttrMaxRegistersPerMultiprocessor: *value = p.regsPerMultiprocessor; break;
    case cudaDevAttrMaxBlocksPerMultiprocessor: *value = p.maxBlocksPerMultiProcessor; break;
    case cudaDevAttrTotalConstantMemory: *value = (int)p.totalConstMem; break;
    case cudaDevAttrGlobalMemoryBusWidth: *value = p.memoryBusWidth; break;
    case cudaDevAttrUnifiedAddressing: *value = 1; break;
    case cudaDevAttrConcurrentKernels: *value = 1; break;
    case cudaDevAttrCooperativeLaunch: *value = 1; break;
    case cudaDevAttrMemoryPoolsSupported: *value = 1; break;
    case cudaDevAttrStreamPrioritiesSupported: *value = 1; break;
    case cudaDevAttrReservedSharedMemoryPerBlock: *value = (int)p.reservedSharedMemPerBlock; break;
    case cudaDevAttrPciBusId: *value = p.pciBusID; break;
    default:
      return api_fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute", "attribute %d is not simulated", (int)attr);
  }
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
  CUR_DEVICE(d);
  *free_bytes = d->total - d->used;
  *total = d->total;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  CUR_DEVICE(d);
  if (cudaError_t e = sync_gate(lk, d->def, true, "cudaDeviceSynchronize")) return ret(e);
  flush_device(lk, *d);
  return ret(d->sticky);
}

cudaError_t cudaDeviceReset(void) {
  init();
  Lock lk(R.mu);
  if (t_dev < 0 || t_dev >= (int)R.devs.size()) return ret(cudaErrorNoDevice);
  Device &d = R.devs[(size_t)t_dev];
  for (Stream *s : d.streams) {  // drop pending work, as destroying the context does
    s->executed += s->q.size();
    s->q.clear();
  }
  for (auto it = R.allocs.begin(); it != R.allocs.end();) {
    if (it->second.device == d.id && it->second.kind == MEM_DEVICE) {
      free((void *)it->first);
      it = R.allocs.erase(it);
    } else {
      ++it;
    }
  }
  d.used = 0;
  d.sticky = cudaSuccess;
  d.max_dyn_smem.clear();
  t_last = cudaSuccess;
  R.cv.notify_all();
  return cudaSuccess;
}

cudaError_t cudaDeviceSetLimit(cudaLimit limit, size_t value) {
  CUR_DEVICE(d);
  d->limits[(int)limit] = value;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetLimit(size_t *value, cudaLimit limit) {
  CUR_DEVICE(d);
  auto it = d->limits.find((int)limit);
  *value = it != d->limits.end() ? it->second : limit == cudaLimitStackSize ? 1024 : 0;
  return cudaSuccess;
}

cudaError_t cudaSetDeviceFlags(unsigned int) { return cudaSuccess; }
cudaError_t cudaGetDeviceFlags(unsigned int *flags) { *flags = 0; return cudaSuccess; }

cudaError_t cudaDeviceCanAccessPeer(int *can, int device, int peer) {
  init();
  *can = device != peer && device >= 0 && peer >= 0 && device < (int)R.devs.size() && peer < (int)R.devs.size();
  return cudaSuccess;
}
cudaError_t cudaDeviceEnablePeerAccess(int, unsigned int) { return cudaSuccess; }

cudaError_t cudaDeviceGetStreamPriorityRange(int *least, int *greatest) {
  if (least) *least = 0;
  if (greatest) *greatest = -5;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v) { *v = CUDART_VERSION; return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int *v) { *v = CUDART_VERSION; return cudaSuccess; }

// ---- errors ----
cudaError_t cudaGetLastError(void) {
  init();
  cudaError_t e = t_last;
  t_last = cudaSuccess;
  if (t_dev >= 0 && t_dev < (int)R.devs.size()) {
    Lock lk(R.mu);
    if (R.devs[(size_t)t_dev].sticky) return R.devs[(size_t)t_dev].sticky;
  }
  return e;
}

cudaError_t cudaPeekAtLastError(void) {
  init();
  if (t_dev >= 0 && t_dev < (int)R.devs.size()) {
    Lock lk(R.mu);
    if (R.devs[(size_t)t_dev].sticky) return R.devs[(size_t)t_dev].sticky;
  }
  return t_last;
}

#define CUSIM_ERRORS(X)                                                                            \
  X(cudaSuccess, "no error")                                                                       \
  X(cudaErrorInvalidValue, "invalid argument")                                                     \
  X(cudaErrorMemoryAllocation, "out of memory")                                                    \
  X(cudaErrorInitializationError, "initialization error")                                          \
  X(cudaErrorInvalidConfiguration, "invalid configuration argument")                               \
  X(cudaErrorInvalidMemcpyDirection, "invalid copy direction for memcpy")                          \
  X(cudaErrorInvalidDevicePointer, "invalid device pointer")                                       \
  X(cudaErrorInvalidDevice, "invalid device ordinal")                                              \
  X(cudaErrorInvalidResourceHandle, "invalid resource handle")                                     \
  X(cudaErrorNotReady, "device not ready")                                                         \
  X(cudaErrorNoDevice, "no CUDA-capable device is detected")                                       \
  X(cudaErrorInsufficientDriver, "CUDA driver version is insufficient for CUDA runtime version")  \
  X(cudaErrorIllegalAddress, "an illegal memory access was encountered")                           \
  X(cudaErrorMisalignedAddress, "misaligned address")                                              \
  X(cudaErrorLaunchOutOfResources, "too many resources requested for launch")                      \
  X(cudaErrorLaunchFailure, "unspecified launch failure")                                          \
  X(cudaErrorLaunchTimeout, "the launch timed out and was terminated")                             \
  X(cudaErrorAssert, "device-side assert triggered")                                               \
  X(cudaErrorIllegalInstruction, "an illegal instruction was encountered")                         \
  X(cudaErrorInvalidDeviceFunction, "invalid device function")                                     \
  X(cudaErrorNotSupported, "operation not supported")                                              \
  X(cudaErrorIllegalState, "operation not permitted in current state")                             \
  X(cudaErrorStreamCaptureUnsupported, "operation not permitted when stream is capturing")         \
  X(cudaErrorStreamCaptureInvalidated, "operation failed due to a previous error during capture")  \
  X(cudaErrorStreamCaptureUnmatched, "capture was not initiated in this stream")                   \
  X(cudaErrorStreamCaptureIsolation, "dependency created on uncaptured work in another stream")    \
  X(cudaErrorStreamCaptureImplicit, "operation would make the legacy stream depend on a capturing blocking stream") \
  X(cudaErrorCapturedEvent, "operation not permitted on an event last recorded in a capturing stream") \
  X(cudaErrorStreamCaptureWrongThread, "attempt to terminate a thread-local capture sequence from another thread") \
  X(cudaErrorUnknown, "unknown error")

const char *cudaGetErrorString(cudaError_t e) {
#define X(c, s) if (e == c) return s;
  CUSIM_ERRORS(X)
#undef X
  return "unrecognized error code";
}

const char *cudaGetErrorName(cudaError_t e) {
#define X(c, s) if (e == c) return #c;
  CUSIM_ERRORS(X)
#undef X
  return "cudaErrorUnknown";
}

// ---- memory ----
static cudaError_t alloc_common(void **p, size_t size, int kind, const char *api) {
  CUR_DEVICE(d);
  if (!p) return ret(cudaErrorInvalidValue);
  if (cudaError_t e = unsafe_call(lk, api)) return ret(e);
  if (kind == MEM_DEVICE && size > d->total - d->used) {
    *p = nullptr;
    return api_fail(cudaErrorMemoryAllocation, api, "%zu bytes requested, %zu of %zu free on device %d (CUSIM_MEM_BYTES)",
                    size, d->total - d->used, d->total, d->id);
  }
  void *m = nullptr;
  if (posix_memalign(&m, 256, std::max<size_t>(size, 1)) != 0) {
    *p = nullptr;
    return api_fail(cudaErrorMemoryAllocation, api, "host allocation of %zu bytes failed", size);
  }
  if (kind == MEM_DEVICE && R.poison) memset(m, 0xff, size);  // uninitialised device memory reads as NaN
  R.allocs[(uintptr_t)m] = Alloc{size, d->id, kind, true};
  if (kind == MEM_DEVICE) d->used += size;
  *p = m;
  return cudaSuccess;
}

static cudaError_t free_common(void *p, int kind, const char *api) {
  CUR_DEVICE(d);
  if (!p) return cudaSuccess;
  if (cudaError_t e = unsafe_call(lk, api)) return ret(e);
  auto it = R.allocs.find((uintptr_t)p);
  if (it == R.allocs.end() || it->second.kind != kind || !it->second.owned)
    return api_fail(cudaErrorInvalidValue, api, "%p is not the start of a live %s allocation (%s)", p,
                    kind == MEM_DEVICE ? "cudaMalloc" : "cudaMallocHost", mem_describe(p, 0).c_str());
  if (kind == MEM_DEVICE) {  // cudaFree waits for the device's work
    Device &owner = R.devs[(size_t)it->second.device];
    flush_device(lk, owner);
    it = R.allocs.find((uintptr_t)p);
    owner.used -= it->second.size;
  }
  R.allocs.erase(it);
  free(p);
  return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t size) { return alloc_common(p, size, MEM_DEVICE, "cudaMalloc"); }
cudaError_t cudaFree(void *p) { return free_common(p, MEM_DEVICE, "cudaFree"); }
cudaError_t cudaMallocHost(void **p, size_t size) { return alloc_common(p, size, MEM_HOST, "cudaMallocHost"); }
cudaError_t cudaHostAlloc(void **p, size_t size, unsigned int) { return alloc_common(p, size, MEM_HOST, "cudaHostAlloc"); }
cudaError_t cudaFreeHost(void *p) { return free_common(p, MEM_HOST, "cudaFreeHost"); }

cudaError_t cudaMallocAsync(void **p, size_t size, cudaStream_t) { return cudaMalloc(p, size); }
cudaError_t cudaFreeAsync(void *p, cudaStream_t stream) {
  CUR_DEVICE(d);
  cudaError_t e;
  Stream *s = get_stream(stream, &e);
  if (!s) return ret(e);
  if (!R.allocs.count((uintptr_t)p)) return api_fail(cudaErrorInvalidValue, "cudaFreeAsync", "%p is not a cudaMalloc'ed block", p);
  enqueue(lk, s, [p](Lock &) {
    auto it = R.allocs.find((uintptr_t)p);
    if (it == R.allocs.end()) return;
    R.devs[(size_t)it->second.device].used -= it->second.size;
    R.allocs.erase(it);
    free(p);
  });
  return cudaSuccess;
}

cudaError_t cudaHostRegister(void *p, size_t size, unsigned int) {
  CUR_DEVICE(d);
  R.allocs[(uintptr_t)p] = Alloc{size, d->id, MEM_HOST, false};
  return cudaSuccess;
}

cudaError_t cudaHostUnregister(void *p) {
  CUR_DEVICE(d);
  auto it = R.allocs.find((uintptr_t)p);
  if (it == R.allocs.end() || it->second.owned) return api_fail(cudaErrorInvalidValue, "cudaHostUnregister", "%p is not registered", p);
  R.allocs.erase(it);
  return cudaSuccess;
}

cudaError_t cudaHostGetDevicePointer(void **dev, void *host, unsigned int) {
  CUR_DEVICE(d);
  if (mem_kind(host, 1) != MEM_HOST) return api_fail(cudaErrorInvalidValue, "cudaHostGetDevicePointer", "%p is not pinned", host);
  *dev = host;
  return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *a, const void *p) {
  CUR_DEVICE(d);
  int dev = -1, k = mem_kind(p, 1, &dev);
  memset(a, 0, sizeof *a);
  a->type = k == MEM_DEVICE ? cudaMemoryTypeDevice : k == MEM_HOST ? cudaMemoryTypeHost : cudaMemoryTypeUnregistered;
  a->device = k ? dev : -2;
  a->devicePointer = k ? const_cast<void *>(p) : nullptr;
  a->hostPointer = k == MEM_HOST || !k ? const_cast<void *>(p) : nullptr;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
  CUR_DEVICE(d);
  // on the legacy default stream; returns when the data is where the caller can use it
  if (cudaError_t e = unsafe_call(lk, "cudaMemcpy")) return ret(e);
  return copy_async(lk, "cudaMemcpy", dst, src, n, kind, d->def, true);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t stream) {
  CUR_DEVICE(d);
  cudaError_t e;
  Stream *s = get_stream(stream, &e);
  if (!s) return ret(e);
  return copy_async(lk, "cudaMemcpyAsync", dst, src, n, kind, s, false);
}

cudaError_t cudaMemcpyPeer(void *dst, int, const void *src, int, size_t n) {
  return cudaMemcpy(dst, src, n, cudaMemcpyDeviceToDevice);
}
cudaError_t cudaMemcpyPeerAsync(void *dst, int, const void *src, int, size_t n, cudaStream_t s) {
  return cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, s);
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream) {
  for (size_t r = 0; r < height; r++)
    if (cudaError_t e = cudaMemcpyAsync((char *)dst + r * dpitch, (const char *)src + r * spitch, width, kind, stream))
      return e;
  return cudaSuccess;
}
cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind) {
  if (cudaError_t e = cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, kind, 0)) return e;
  return kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDefault ? cudaStreamSynchronize(0) : cudaSuccess;
}

cudaError_t cudaMemset(void *p, int v, size_t n) {
  CUR_DEVICE(d);
  return memset_async("cudaMemset", p, v, n, d->def, lk);
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t stream) {
  CUR_DEVICE(d);
  cudaError_t e;
  Stream *s = get_stream(stream, &e);
  if (!s) return ret(e);
  return memset_async("cudaMemsetAsync", p, v, n, s, lk);
}

// __constant__ / __device__ variables are plain host variables under cusim.
cudaError_t cudaMemcpyToSymbolAsync(const void *symbol, const void *src, size_t n, size_t off, cudaMemcpyKind,
                                    cudaStream_t stream) {
  CUR_DEVICE(d);
  cudaError_t e;
  Stream *s = get_stream(stream, &e);
  if (!s) return ret(e);
  if (cudaError_t ge = capture_gate(lk, s, "cudaMemcpyToSymbolAsync")) return ret(ge);
  if (s->cap) {  // staged from pageable memory: see copy_async
    invalidate_capture(s->cap, "cudaMemcpyToSymbolAsync during stream capture");
    return api_fail(cudaErrorStreamCaptureUnsupported, "cudaMemcpyToSymbolAsync", "not simulated inside a capture");
  }
  auto staged = std::make_shared<std::vector<unsigned char>>((const unsigned char *)src, (const unsigned char *)src + n);
  void *dst = (char *)const_cast<void *>(symbol) + off;
  enqueue(lk, s, [dst, staged](Lock &) { memcpy(dst, staged->data(), staged->size()); });
  return cudaSuccess;
}
cudaError_t cudaMemcpyToSymbol(const void *symbol, const void *src, size_t n, size_t off, cudaMemcpyKind kind) {
  return cudaMemcpyToSymbolAsync(symbol, src, n, off, kind, 0);
}
cudaError_t cudaMemcpyFromSymbol(void *dst, const void *symbol, size_t n, size_t off, cudaMemcpyKind) {
  if (cudaError_t e = cudaDeviceSynchronize()) return e;
  memcpy(dst, (const char *)symbol + off, n);
  return cudaSuccess;
}

// ---- streams and events ----
static cudaError_t stream_create(cudaStream_t *out, unsigned flags, int priority) {
  CUR_DEVICE(d);
  Stream *s = new Stream();
  s->device = d->id;
  s->blocking = !(flags & cudaStreamNonBlocking);
  s->priority = priority;
  d->streams.push_back(s);
  R.streams.insert(s);
  *out = reinterpret_cast<cudaStream_t>(s);
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { return stream_create(s, 0, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) { return stream_create(s, flags, 0); }
cudaError_t cudaStreamCreateWithPriority(cudaStream_t *s, unsigned int flags, int prio) { return stream_create(s, flags, prio); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  init();
  Lock lk(R.mu);
  cudaError_t e;
  Stream *s = get_stream(stream, &e);
  if (!s) return ret(e);
  if (s->is_default) return ret(cudaErrorInvalidResourceHandle);
  flush(lk, s, s->enqueued);  // pending work still completes
  R.streams.erase(s);
  R.destroyed.push_back(s);
  auto &v = R.devs[(size_t)s->device].streams;
  v.erase(std::find(v.begin(), v.end(), s));
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  CUR_DEVICE(d);
  cudaError_t e;
  Stream *s = get_stream(stream, &e);
  if (!s) return ret(e);
  if (cudaError_t ge = sync_gate(lk, s, false, "cudaStreamSynchronize")) return ret(ge);
  flush(lk, s, s->enqueued);
  return ret(R.devs[(size_t)s->device].sticky);
}

// The deferred model has no background progress: a query runs the stream's work and says "done".
cudaError_t cudaStreamQuery(cudaStream_t stream) { return cudaStreamSynchronize(stream); }

cudaError_t cudaStreamGetFlags(cudaStream_t stream, unsigned int *flags) {
  CUR_DEVICE(d);
  cudaError_t e;
  Stream *s = get_stream(stream, &e);
  if (!s) return ret(e);
  *flags = s->blocking ? cudaStreamDefault : cudaStreamNonBlocking;
  return cudaSuccess;
}

cudaError_t cudaStreamGetPriority(cudaStream_t stream, int *prio) {
  CUR_DEVICE(d);
  cudaError_t e;
  Stream *s = get_stream(stream, &e);
  if (!s) return ret(e);
  *prio = s->priority;
  return cudaSuccess;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void *user) {
  CUR_DEVICE(d);
  cudaError_t e;
  Stream *s = get_stream(stream, &e);
  if (!s) return ret(e);
  if (cudaError_t ge = capture_gate(lk, s, "cudaLaunchHostFunc")) return ret(ge);
  enqueue(lk, s, [fn, user](Lock &l) {
    l.unlock();  // the callback may not call CUDA, but it may take the caller's locks
    fn(user);
    l.lock();
  });
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *ev, unsigned int flags) {
  init();
  Lock lk(R.mu);
  Event *e = new Event();
  e->timing = !(flags & cudaEventDisableTiming);
  R.events.insert(e);
  *ev = reinterpret_cast<cudaEvent_t>(e);
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *ev) { return cudaEventCreateWithFlags(ev, 0); }

cudaError_t cudaEventDestroy(cudaEvent_t ev) {
  init();
  Lock lk(R.mu);
  Event *e = get_event(ev);
  if (!e) return api_fail(cudaErrorInvalidResourceHandle, "cudaEventDestroy", "%p is not a live event", (void *)ev);
  R.events.erase(e);
  delete e;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t stream) {
  CUR_DEVICE(d);
  Event *e = get_event(ev);
  if (!e) return api_fail(cudaErrorInvalidResourceHandle, "cudaEventRecord", "%p is not a live event", (void *)ev);
  cudaError_t err;
  Stream *s = get_stream(stream, &err);
  if (!s) return ret(err);
  if (cudaError_t ge = capture_gate(lk, s, "cudaEventRecord")) return ret(ge);
  e->s = s;
  e->t_ms = -1;
  uint64_t gen = ++e->gen;
  e->captured = s->cap != nullptr;
  if (e->captured) return cudaSuccess;  // an event-record node: no time, never waited on from outside
  e->pos = enqueue(lk, s, [e, gen](Lock &) {
    if (R.events.count(e) && e->gen == gen) e->t_ms = now_ms();
  });
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t ev) {
  init();
  Lock lk(R.mu);
  Event *e = get_event(ev);
  if (!e) return api_fail(cudaErrorInvalidResourceHandle, "cudaEventSynchronize", "%p is not a live event", (void *)ev);
  if (e->captured)
    return api_fail(cudaErrorCapturedEvent, "cudaEventSynchronize", "the event was last recorded inside a stream capture");
  if (!e->s) return cudaSuccess;
  flush(lk, e->s, e->pos);
  return ret(R.devs[(size_t)e->s->device].sticky);
}

// Runs the stream's work up to the event, like a synchronisation, except while another host thread is
// executing that stream (e.g. blocked in an NCCL collective waiting for its peers): then it answers
// "not ready" at once, as a GPU would, so a watchdog thread can poll without waiting behind the hang.
cudaError_t cudaEventQuery(cudaEvent_t ev) {
  {
    init();
    Lock lk(R.mu);
    Event *e = get_event(ev);
    if (e && e->captured)
      return api_fail(cudaErrorCapturedEvent, "cudaEventQuery", "the event was last recorded inside a stream capture");
    if (e && e->s && e->s->executed < e->pos && e->s->busy && e->s->owner != std::this_thread::get_id())
      return cudaErrorNotReady;
  }
  return cudaEventSynchronize(ev);
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
  init();
  Lock lk(R.mu);
  Event *x = get_event(a), *y = get_event(b);
  if (!x || !y || !x->timing || !y->timing) return ret(cudaErrorInvalidResourceHandle);
  if (x->t_ms < 0 || y->t_ms < 0) return ret(cudaErrorNotReady);
  *ms = (float)(y->t_ms - x->t_ms);
  return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t ev, unsigned int) {
  CUR_DEVICE(d);
  Event *e = get_event(ev);
  if (!e) return api_fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent", "%p is not a live event", (void *)ev);
  cudaError_t err;
  Stream *s = get_stream(stream, &err);
  if (!s) return ret(err);
  if (cudaError_t ge = capture_gate(lk, s, "cudaStreamWaitEvent")) return ret(ge);
  if (e->captured && e->s != s)  // CUDA forks the capture into `s`; cusim captures one stream
    return api_fail(cudaErrorStreamCaptureUnsupported, "cudaStreamWaitEvent",
                    "a wait on an event recorded in another stream's capture (cross-stream capture is not simulated)");
  if (e->captured) return cudaSuccess;  // in-stream order already holds
  if (s->cap && e->s) {
    invalidate_capture(s->cap, "cudaStreamWaitEvent on an event recorded outside the capture");
    return api_fail(cudaErrorStreamCaptureIsolation, "cudaStreamWaitEvent",
                    "a capturing stream cannot wait for an event recorded outside its capture");
  }
  if (!e->s) return cudaSuccess;  // never recorded: nothing to wait for
  Stream *t = e->s;
  uint64_t pos = e->pos;
  enqueue(lk, s, [t, pos](Lock &l) { flush(l, t, pos); });
  return cudaSuccess;
}

// ---- kernels ----
cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value) {
  CUR_DEVICE(d);
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || (size_t)value > d->prop.sharedMemPerBlockOptin)
      return api_fail(cudaErrorInvalidValue, "cudaFuncSetAttribute",
                      "MaxDynamicSharedMemorySize %d is over the device's %zu bytes", value, d->prop.sharedMemPerBlockOptin);
    d->max_dyn_smem[func] = value;
  }
  return cudaSuccess;
}

cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *a, const void *func) {
  CUR_DEVICE(d);
  memset(a, 0, sizeof *a);
  a->maxThreadsPerBlock = 1024;
  auto it = d->max_dyn_smem.find(func);
  a->maxDynamicSharedSizeBytes = it == d->max_dyn_smem.end() ? 49152 : it->second;
  a->binaryVersion = a->ptxVersion = d->prop.major * 10 + d->prop.minor;
  return cudaSuccess;  // registers, static shared memory and local memory are not known here
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *n, const void *, int block, size_t smem) {
  CUR_DEVICE(d);
  if (block <= 0) return ret(cudaErrorInvalidValue);
  const cudaDeviceProp &p = d->prop;
  int by_threads = p.maxThreadsPerMultiProcessor / ((block + 31) / 32 * 32);
  int by_smem = (int)(p.sharedMemPerMultiprocessor / (smem + p.reservedSharedMemPerBlock));
  *n = std::max(0, std::min({by_threads, by_smem, p.maxBlocksPerMultiProcessor}));
  return cudaSuccess;
}
