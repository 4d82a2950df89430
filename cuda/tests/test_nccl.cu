// The NCCL subset with 2, 4 and 8 ranks, both ways NCCL is driven: one host thread per rank
// (ncclGetUniqueId + ncclCommInitRank) and one thread for all ranks (ncclCommInitAll + group calls).
// AllReduce (sum/max/min; f32/f16/bf16; also in place), AllGather, ReduceScatter, Broadcast, and
// ncclCommAbort of a communicator whose peers wait in a collective. Values are small integers, so
// every result is exact whatever the reduction order.
#include "test_util.cuh"

#include <nccl.h>
#include <mutex>
#include <thread>

#define NCCL_OK(expr)                                                                               \
  do {                                                                                              \
    ncclResult_t r_ = (expr);                                                                       \
    g_checks++;                                                                                     \
    if (r_ != ncclSuccess) {                                                                        \
      g_failed++;                                                                                   \
      fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, ncclGetErrorString(r_)); \
    }                                                                                               \
  } while (0)

static std::mutex g_check_mu;  // CHECK from several threads

static float input(int rank, size_t i) { return (float)((rank + 1) * ((int)(i % 7) - 3) + rank); }

template <class T> static T from_f(float f);
template <> float from_f<float>(float f) { return f; }
template <> __half from_f<__half>(float f) { return __float2half(f); }
template <> __nv_bfloat16 from_f<__nv_bfloat16>(float f) { return __float2bfloat16(f); }
static float to_f(float x) { return x; }
static float to_f(__half x) { return __half2float(x); }
static float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }

struct Rank {
  int rank, n;
  ncclComm_t comm;
  cudaStream_t stream;
  size_t count;
  float *f_send, *f_recv, *f_gather, *f_scatter;
  __half *h_send, *h_recv;
  __nv_bfloat16 *b_send, *b_recv;
};

template <class T> static T *upload(int rank, size_t count, cudaStream_t s) {
  std::vector<T> h(count);
  for (size_t i = 0; i < count; i++) h[i] = from_f<T>(input(rank, i));
  T *d = dev_alloc<T>(count);
  CUDA_OK(cudaMemcpyAsync(d, h.data(), count * sizeof(T), cudaMemcpyHostToDevice, s));
  return d;
}

// Allocate on the rank's device; the caller has selected it.
static void setup(Rank &r) {
  CUDA_OK(cudaStreamCreate(&r.stream));
  r.f_send = upload<float>(r.rank, r.count * r.n, r.stream);
  r.h_send = upload<__half>(r.rank, r.count, r.stream);
  r.b_send = upload<__nv_bfloat16>(r.rank, r.count, r.stream);
  r.f_recv = dev_alloc<float>(r.count);
  r.h_recv = dev_alloc<__half>(r.count);
  r.b_recv = dev_alloc<__nv_bfloat16>(r.count);
  r.f_gather = dev_alloc<float>(r.count * r.n);
  r.f_scatter = dev_alloc<float>(r.count);
}

static double reduce_ref(int n, size_t i, ncclRedOp_t op, size_t offset = 0) {
  double acc = input(0, offset + i);
  for (int q = 1; q < n; q++) {
    double v = input(q, offset + i);
    acc = op == ncclSum ? acc + v : op == ncclMax ? (v > acc ? v : acc) : (v < acc ? v : acc);
  }
  return acc;
}

// Post this rank's collectives (no synchronisation).
static void post(Rank &r, ncclRedOp_t op) {
  NCCL_OK(ncclAllReduce(r.f_send, r.f_recv, r.count, ncclFloat32, op, r.comm, r.stream));
  NCCL_OK(ncclAllReduce(r.h_send, r.h_recv, r.count, ncclFloat16, op, r.comm, r.stream));
  NCCL_OK(ncclAllReduce(r.b_send, r.b_recv, r.count, ncclBfloat16, op, r.comm, r.stream));
  NCCL_OK(ncclAllGather(r.f_send, r.f_gather, r.count, ncclFloat32, r.comm, r.stream));
  NCCL_OK(ncclReduceScatter(r.f_send, r.f_scatter, r.count, ncclFloat32, op, r.comm, r.stream));
}

template <class T> static int count_bad(const T *d, size_t count, int n, ncclRedOp_t op) {
  std::vector<T> h = to_host(d, count);
  int bad = 0;
  for (size_t i = 0; i < count; i++) bad += to_f(h[i]) != (float)reduce_ref(n, i, op);
  return bad;
}

static void verify(Rank &r, ncclRedOp_t op, const char *how) {
  CUDA_OK(cudaStreamSynchronize(r.stream));
  int bad_f = count_bad(r.f_recv, r.count, r.n, op), bad_h = count_bad(r.h_recv, r.count, r.n, op),
      bad_b = count_bad(r.b_recv, r.count, r.n, op);
  std::vector<float> g = to_host(r.f_gather, r.count * r.n), s = to_host(r.f_scatter, r.count);
  int bad_g = 0, bad_s = 0;
  for (int q = 0; q < r.n; q++)
    for (size_t i = 0; i < r.count; i++) bad_g += g[q * r.count + i] != input(q, i);
  for (size_t i = 0; i < r.count; i++) bad_s += s[i] != (float)reduce_ref(r.n, i, op, r.rank * r.count);
  std::lock_guard<std::mutex> lk(g_check_mu);
  CHECKF(bad_f + bad_h + bad_b + bad_g + bad_s == 0,
         "%s, %d ranks, op %d, rank %d: allreduce f32/f16/bf16 %d/%d/%d, allgather %d, reducescatter %d wrong", how,
         r.n, (int)op, r.rank, bad_f, bad_h, bad_b, bad_g, bad_s);
}

static void broadcast_and_inplace(Rank &r, const char *how) {
  int root = r.n - 1;
  NCCL_OK(ncclBroadcast(r.f_send, r.f_recv, r.count, ncclFloat32, root, r.comm, r.stream));
  CUDA_OK(cudaStreamSynchronize(r.stream));
  std::vector<float> b = to_host(r.f_recv, r.count);
  // in place: send == recv
  NCCL_OK(ncclAllReduce(r.f_gather, r.f_gather, r.count * r.n, ncclFloat32, ncclSum, r.comm, r.stream));
  CUDA_OK(cudaStreamSynchronize(r.stream));
  std::vector<float> ip = to_host(r.f_gather, r.count * r.n);
  int bad = 0;
  for (size_t i = 0; i < r.count; i++) bad += b[i] != input(root, i);
  for (size_t i = 0; i < r.count * r.n; i++) bad += ip[i] != (float)r.n * input((int)(i / r.count), i % r.count);
  std::lock_guard<std::mutex> lk(g_check_mu);
  CHECKF(bad == 0, "%s, %d ranks, rank %d: broadcast / in-place allreduce: %d wrong", how, r.n, r.rank, bad);
}

static void release(Rank &r) {
  cudaFree(r.f_send); cudaFree(r.f_recv); cudaFree(r.h_send); cudaFree(r.h_recv); cudaFree(r.b_send);
  cudaFree(r.b_recv); cudaFree(r.f_gather); cudaFree(r.f_scatter);
  CUDA_OK(cudaStreamDestroy(r.stream));
}

// One host thread per rank.
static void run_threads(int n) {
  ncclUniqueId id;
  NCCL_OK(ncclGetUniqueId(&id));
  std::vector<std::thread> th;
  for (int rank = 0; rank < n; rank++)
    th.emplace_back([=] {
      Rank r{};
      r.rank = rank; r.n = n; r.count = 1000 + 8;
      CUDA_OK(cudaSetDevice(rank));
      NCCL_OK(ncclCommInitRank(&r.comm, n, id, rank));
      setup(r);
      for (ncclRedOp_t op : {ncclSum, ncclMax, ncclMin}) {
        post(r, op);
        verify(r, op, "thread per rank");
      }
      broadcast_and_inplace(r, "thread per rank");
      int nr = 0, dev = -1, me = -1;
      NCCL_OK(ncclCommCount(r.comm, &nr));
      NCCL_OK(ncclCommCuDevice(r.comm, &dev));
      NCCL_OK(ncclCommUserRank(r.comm, &me));
      std::lock_guard<std::mutex> lk(g_check_mu);
      CHECK(nr == n && dev == rank && me == rank);
      release(r);
      NCCL_OK(ncclCommDestroy(r.comm));
    });
  for (auto &t : th) t.join();
}

// One thread drives every rank through group calls.
static void run_grouped(int n) {
  std::vector<ncclComm_t> comms(n);
  NCCL_OK(ncclCommInitAll(comms.data(), n, nullptr));
  std::vector<Rank> rs(n);
  for (int i = 0; i < n; i++) {
    rs[i] = Rank{};
    rs[i].rank = i; rs[i].n = n; rs[i].count = 333; rs[i].comm = comms[i];
    CUDA_OK(cudaSetDevice(i));
    setup(rs[i]);
  }
  for (ncclRedOp_t op : {ncclSum, ncclMax, ncclMin}) {
    NCCL_OK(ncclGroupStart());
    for (int i = 0; i < n; i++) {
      CUDA_OK(cudaSetDevice(i));
      post(rs[i], op);
    }
    NCCL_OK(ncclGroupEnd());
    for (int i = 0; i < n; i++) {
      CUDA_OK(cudaSetDevice(i));
      verify(rs[i], op, "grouped");
    }
  }
  for (int i = 0; i < n; i++) {
    CUDA_OK(cudaSetDevice(i));
    release(rs[i]);
    NCCL_OK(ncclCommDestroy(comms[i]));
  }
  CUDA_OK(cudaSetDevice(0));
}

// Ranks 0-2 wait in an AllReduce that rank 3 never joins; aborting the communicators ends it.
static void run_abort() {
  const int n = 4;
  std::vector<ncclComm_t> comms(n);
  NCCL_OK(ncclCommInitAll(comms.data(), n, nullptr));
  std::vector<float *> buf(n);
  std::vector<cudaStream_t> st(n);
  for (int i = 0; i < n; i++) {
    CUDA_OK(cudaSetDevice(i));
    CUDA_OK(cudaStreamCreate(&st[i]));
    buf[i] = dev_alloc<float>(64);
  }
  NCCL_OK(ncclGroupStart());
  for (int i = 0; i < 3; i++) {
    CUDA_OK(cudaSetDevice(i));
    NCCL_OK(ncclAllReduce(buf[i], buf[i], 64, ncclFloat32, ncclSum, comms[i], st[i]));
  }
  NCCL_OK(ncclGroupEnd());
  NCCL_OK(ncclCommAbort(comms[3]));
#ifdef CUSIM
  ncclResult_t async = ncclSuccess;
  NCCL_OK(ncclCommGetAsyncError(comms[0], &async));
  CHECKF(async == ncclRemoteError, "after a peer's abort: async error %s", ncclGetErrorString(async));
#endif
  for (int i = 0; i < 3; i++) NCCL_OK(ncclCommAbort(comms[i]));
  for (int i = 0; i < 3; i++) {
    CUDA_OK(cudaSetDevice(i));
    cudaStreamSynchronize(st[i]);  // returns: the collective was abandoned
  }
  CHECK(ncclAllReduce(buf[0], buf[0], 64, ncclFloat32, ncclSum, comms[0], st[0]) != ncclSuccess);
  for (int i = 0; i < n; i++) {
    CUDA_OK(cudaSetDevice(i));
    cudaFree(buf[i]);
    cudaStreamDestroy(st[i]);
  }
  CUDA_OK(cudaSetDevice(0));
}

int main() {
  require_device(2);
  int devices = 0;
  cudaGetDeviceCount(&devices);
  int version = 0;
  NCCL_OK(ncclGetVersion(&version));
  printf("NCCL %d, %d devices\n", version, devices);
  for (int n : {2, 4, 8}) {
    if (n > devices) { printf("skipping %d ranks: %d devices\n", n, devices); continue; }
    run_threads(n);
    run_grouped(n);
    printf("ok: %d ranks\n", n);
  }
  if (devices >= 4) run_abort();
  return test_summary("test_nccl");
}
