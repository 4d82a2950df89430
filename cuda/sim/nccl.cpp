// nccl.cpp: NCCL with ranks as host threads (or one thread driving all ranks through group calls).
// Communicators meet in a registry keyed by ncclUniqueId. A collective is an operation on the rank's
// stream (deferred like the rest); when it executes it records the rank's buffers and waits for the
// other ranks, executing their streams up to the same collective if no thread does. The last rank
// to arrive reduces in fixed rank order (0, 1, 2, ...) and writes every rank's output.
#include "internal.h"

#include <nccl.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <vector>
#include <unistd.h>

namespace {

using cusim::fmt;
using cusim::Lock;

enum CollKind { C_ALLREDUCE, C_ALLGATHER, C_REDUCESCATTER, C_BROADCAST, C_REDUCE };
const char *const kCollName[] = {"ncclAllReduce", "ncclAllGather", "ncclReduceScatter", "ncclBroadcast", "ncclReduce"};

struct Arrival { const void *send; void *recv; };

struct Coll {
  CollKind kind;
  size_t count;
  ncclDataType_t dtype;
  ncclRedOp_t op;
  int root;
  std::vector<bool> arrived;
  std::vector<Arrival> args;
  std::vector<cusim::Stream *> streams;  // where each rank posted it
  std::vector<uint64_t> pos;
  int narrived = 0, nposted = 0;
  bool complete = false;
};

struct Clique {  // the ranks of one communicator
  int nranks = 0, joined = 0;
  bool aborted = false;
  std::vector<ncclComm *> ranks;
  std::map<uint64_t, std::shared_ptr<Coll>> colls;
};

// by unique id; never destroyed (ranks of other threads may outlive main's static destructors)
std::map<std::string, std::shared_ptr<Clique>> &g_cliques = *new std::map<std::string, std::shared_ptr<Clique>>();
std::atomic<uint64_t> g_id_counter{1};
thread_local int t_group_depth = 0;
thread_local std::vector<ncclComm *> t_group_inits;

size_t dtype_size(ncclDataType_t t) {
  switch (t) {
    case ncclInt8: case ncclUint8: case ncclFloat8e4m3: case ncclFloat8e5m2: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    default: return 0;
  }
}

double load(const void *p, ncclDataType_t t, size_t i) {
  switch (t) {
    case ncclInt8: return static_cast<const int8_t *>(p)[i];
    case ncclUint8: return static_cast<const uint8_t *>(p)[i];
    case ncclInt32: return static_cast<const int32_t *>(p)[i];
    case ncclUint32: return static_cast<const uint32_t *>(p)[i];
    case ncclInt64: return (double)static_cast<const int64_t *>(p)[i];
    case ncclUint64: return (double)static_cast<const uint64_t *>(p)[i];
    case ncclFloat16: return __half2float(static_cast<const __half *>(p)[i]);
    case ncclBfloat16: return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
    case ncclFloat32: return static_cast<const float *>(p)[i];
    default: return static_cast<const double *>(p)[i];
  }
}

void store(void *p, ncclDataType_t t, size_t i, double v) {
  switch (t) {
    case ncclInt8: static_cast<int8_t *>(p)[i] = (int8_t)v; break;
    case ncclUint8: static_cast<uint8_t *>(p)[i] = (uint8_t)v; break;
    case ncclInt32: static_cast<int32_t *>(p)[i] = (int32_t)v; break;
    case ncclUint32: static_cast<uint32_t *>(p)[i] = (uint32_t)v; break;
    case ncclInt64: static_cast<int64_t *>(p)[i] = (int64_t)v; break;
    case ncclUint64: static_cast<uint64_t *>(p)[i] = (uint64_t)v; break;
    case ncclFloat16: static_cast<__half *>(p)[i] = __double2half(v); break;
    case ncclBfloat16: static_cast<__nv_bfloat16 *>(p)[i] = __double2bfloat16(v); break;
    case ncclFloat32: static_cast<float *>(p)[i] = (float)v; break;
    default: static_cast<double *>(p)[i] = v; break;
  }
}

// Reduce element i of every rank's buffer (at element offset `off`) in rank order.
double reduce_at(const Coll &c, size_t off, size_t i) {
  int n = (int)c.args.size();
  double acc = load(c.args[0].send, c.dtype, off + i);
  for (int r = 1; r < n; r++) {
    double v = load(c.args[(size_t)r].send, c.dtype, off + i);
    switch (c.op) {
      case ncclSum: case ncclAvg: acc += v; break;
      case ncclProd: acc *= v; break;
      case ncclMax: acc = v > acc ? v : acc; break;
      case ncclMin: acc = v < acc ? v : acc; break;
      default: break;
    }
  }
  return c.op == ncclAvg ? acc / n : acc;
}

// All ranks have arrived: compute every output first (buffers may be in place), then write.
void perform(Coll &c) {
  int n = (int)c.args.size();
  size_t es = dtype_size(c.dtype), cnt = c.count;
  std::vector<std::vector<unsigned char>> out((size_t)n);
  for (int r = 0; r < n; r++) {
    auto &o = out[(size_t)r];
    switch (c.kind) {
      case C_ALLREDUCE: case C_REDUCE:
        if (c.kind == C_REDUCE && r != c.root) break;
        o.resize(cnt * es);
        for (size_t i = 0; i < cnt; i++) store(o.data(), c.dtype, i, reduce_at(c, 0, i));
        break;
      case C_REDUCESCATTER:
        o.resize(cnt * es);
        for (size_t i = 0; i < cnt; i++) store(o.data(), c.dtype, i, reduce_at(c, (size_t)r * cnt, i));
        break;
      case C_ALLGATHER:
        o.resize((size_t)n * cnt * es);
        for (int q = 0; q < n; q++) memcpy(o.data() + (size_t)q * cnt * es, c.args[(size_t)q].send, cnt * es);
        break;
      case C_BROADCAST:
        o.assign((const unsigned char *)c.args[(size_t)c.root].send, (const unsigned char *)c.args[(size_t)c.root].send + cnt * es);
        break;
    }
  }
  for (int r = 0; r < n; r++)
    if (!out[(size_t)r].empty()) memcpy(c.args[(size_t)r].recv, out[(size_t)r].data(), out[(size_t)r].size());
}

double timeout_s() {
  long long t = 60;
  cusim::env_int("CUSIM_NCCL_TIMEOUT", 60, &t);
  return (double)t;
}

}  // namespace

struct ncclComm {
  std::shared_ptr<Clique> clique;
  int rank = 0, device = 0;
  uint64_t next_seq = 0;
  ncclResult_t async_error = ncclSuccess;
  bool dead = false;
};

namespace {

// Runs on rank `r`'s stream when its collective #seq executes.
void run_coll(Lock &lk, ncclComm *comm, uint64_t seq, Arrival a) {
  Clique &q = *comm->clique;
  std::shared_ptr<Coll> c = q.colls[seq];
  c->arrived[(size_t)comm->rank] = true;
  c->args[(size_t)comm->rank] = a;
  c->narrived++;
  auto t0 = std::chrono::steady_clock::now();
  while (!c->complete) {
    if (q.aborted) break;
    if (c->narrived == q.nranks) {
      perform(*c);
      c->complete = true;
      q.colls.erase(seq);
      cusim::cv().notify_all();
      break;
    }
    // no thread may be executing the other ranks' streams (one thread driving all ranks): do it here
    int before = c->narrived;
    for (int j = 0; j < q.nranks && !c->complete; j++)
      if (!c->arrived[(size_t)j] && c->streams[(size_t)j] &&
          cusim::stream_executed(c->streams[(size_t)j]) < c->pos[(size_t)j])
        cusim::flush(lk, c->streams[(size_t)j], c->pos[(size_t)j]);
    if (c->complete || c->narrived != before) continue;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s()) {
      std::string missing;
      for (int j = 0; j < q.nranks; j++)
        if (!c->arrived[(size_t)j]) missing += fmt("%s%d", missing.empty() ? "" : ",", j);
      cusim::report(fmt("NCCL deadlock: %s #%llu waited %.0f s (CUSIM_NCCL_TIMEOUT) for rank(s) %s, which never "
                        "reached it (collectives called in different orders, or a rank skipped one?)",
                        kCollName[c->kind], (unsigned long long)seq, timeout_s(), missing.c_str()));
      for (ncclComm *m : q.ranks)
        if (m) m->async_error = ncclSystemError;
      q.aborted = true;
      cusim::cv().notify_all();
      break;
    }
    cusim::cv().wait_for(lk, std::chrono::milliseconds(100));
  }
  if (!c->complete && comm->async_error == ncclSuccess) comm->async_error = ncclRemoteError;
}

ncclResult_t bad(const char *api, const std::string &m, ncclResult_t r = ncclInvalidArgument) {
  cusim::report(fmt("%s: %s", api, m.c_str()));
  return r;
}

ncclResult_t post(CollKind kind, const void *send, void *recv, size_t count, ncclDataType_t dt, ncclRedOp_t op,
                  int root, ncclComm_t comm, cudaStream_t stream) {
  const char *api = kCollName[kind];
  if (!comm || comm->dead) return bad(api, "invalid (destroyed or aborted) communicator");
  if (!dtype_size(dt) || dt == ncclFloat8e4m3 || dt == ncclFloat8e5m2) return bad(api, fmt("data type %d is not simulated", (int)dt));
  if ((kind == C_ALLREDUCE || kind == C_REDUCESCATTER || kind == C_REDUCE) && (op < ncclSum || op > ncclAvg))
    return bad(api, fmt("reduction op %d is not simulated", (int)op));
  Lock lk = cusim::lock();
  Clique &q = *comm->clique;
  if (q.joined < q.nranks) return bad(api, "the communicator's initialisation is not complete", ncclInvalidUsage);
  if ((kind == C_BROADCAST || kind == C_REDUCE) && (root < 0 || root >= q.nranks)) return bad(api, fmt("root %d", root));
  size_t es = dtype_size(dt), n = (size_t)q.nranks;
  size_t send_elems = kind == C_REDUCESCATTER ? count * n : count;
  size_t recv_elems = kind == C_ALLGATHER ? count * n : count;
  bool need_send = kind != C_BROADCAST || comm->rank == root;
  bool need_recv = kind != C_REDUCE || comm->rank == root;
  int dev = -1;
  if (need_send && count && (cusim::mem_kind(send, send_elems * es, &dev) != cusim::MEM_DEVICE || dev != comm->device))
    return bad(api, fmt("rank %d: sendbuff %p (%zu bytes) is not device memory of device %d: %s", comm->rank, send,
                        send_elems * es, comm->device, cusim::mem_describe(send, send_elems * es).c_str()));
  if (need_recv && count && (cusim::mem_kind(recv, recv_elems * es, &dev) != cusim::MEM_DEVICE || dev != comm->device))
    return bad(api, fmt("rank %d: recvbuff %p (%zu bytes) is not device memory of device %d: %s", comm->rank, recv,
                        recv_elems * es, comm->device, cusim::mem_describe(recv, recv_elems * es).c_str()));
  cudaError_t e;
  cusim::Stream *s = cusim::get_stream(stream, &e);
  if (!s) return bad(api, "invalid stream", ncclInvalidArgument);
  if (cusim::stream_device(s) != comm->device)
    return bad(api, fmt("stream of device %d used with a communicator of device %d", cusim::stream_device(s), comm->device));
  if (cusim::stream_capture(s))  // NCCL can be captured on hardware; cusim's rendezvous cannot be replayed
    return bad(api, "a collective inside a stream capture is not simulated", ncclInvalidUsage);
  uint64_t seq = comm->next_seq++;
  std::shared_ptr<Coll> &c = q.colls[seq];
  if (!c) {
    c = std::make_shared<Coll>();
    c->kind = kind; c->count = count; c->dtype = dt; c->op = op; c->root = root;
    c->arrived.assign(n, false); c->args.resize(n); c->streams.assign(n, nullptr); c->pos.assign(n, 0);
  } else if (c->kind != kind || c->count != count || c->dtype != dt || c->op != op || c->root != root) {
    return bad(api, fmt("rank %d: collective #%llu disagrees with another rank's (%s, count %zu, type %d, op %d, root %d)",
                        comm->rank, (unsigned long long)seq, kCollName[c->kind], c->count, (int)c->dtype, (int)c->op,
                        c->root),
               ncclInvalidUsage);
  }
  Arrival a{send, recv};
  c->streams[(size_t)comm->rank] = s;
  c->pos[(size_t)comm->rank] = cusim::enqueue(lk, s, [comm, seq, a](Lock &l) { run_coll(l, comm, seq, a); });
  c->nposted++;
  return ncclSuccess;
}

ncclResult_t wait_joined(Lock &lk, Clique &q) {
  auto t0 = std::chrono::steady_clock::now();
  while (q.joined < q.nranks) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s()) {
      cusim::report(fmt("ncclCommInitRank: only %d of %d ranks joined within %.0f s (CUSIM_NCCL_TIMEOUT)", q.joined,
                        q.nranks, timeout_s()));
      return ncclSystemError;
    }
    cusim::cv().wait_for(lk, std::chrono::milliseconds(100));
  }
  return ncclSuccess;
}

}  // namespace

ncclResult_t ncclGetVersion(int *v) { *v = NCCL_VERSION_CODE; return ncclSuccess; }

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
  memset(id, 0, sizeof *id);
  snprintf(id->internal, sizeof id->internal, "cusim-nccl:%d:%llu", (int)getpid(),
           (unsigned long long)g_id_counter.fetch_add(1));
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *out, int nranks, ncclUniqueId id, int rank) {
  if (nranks < 1 || rank < 0 || rank >= nranks) return bad("ncclCommInitRank", fmt("rank %d of %d", rank, nranks));
  int dev = cusim::current_device();
  Lock lk = cusim::lock();
  std::string key(id.internal, sizeof id.internal);
  std::shared_ptr<Clique> &q = g_cliques[key];
  if (!q) { q = std::make_shared<Clique>(); q->nranks = nranks; q->ranks.assign((size_t)nranks, nullptr); }
  if (q->nranks != nranks) return bad("ncclCommInitRank", fmt("nranks %d, but another rank said %d", nranks, q->nranks));
  if (q->ranks[(size_t)rank]) return bad("ncclCommInitRank", fmt("rank %d joined twice", rank));
  ncclComm *c = new ncclComm();
  c->clique = q; c->rank = rank; c->device = dev;
  q->ranks[(size_t)rank] = c;
  q->joined++;
  cusim::cv().notify_all();
  *out = c;
  if (t_group_depth > 0) { t_group_inits.push_back(c); return ncclSuccess; }
  return wait_joined(lk, *q);  // NCCL's init blocks until every rank has joined
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t *out, int nranks, ncclUniqueId id, int rank, ncclConfig_t *) {
  return ncclCommInitRank(out, nranks, id, rank);
}

ncclResult_t ncclCommInitAll(ncclComm_t *comms, int ndev, const int *devlist) {
  if (ndev < 1) return bad("ncclCommInitAll", fmt("ndev %d", ndev));
  int ndevices = 0;
  cudaGetDeviceCount(&ndevices);
  ncclUniqueId id;
  ncclGetUniqueId(&id);
  int saved = cusim::current_device();
  ncclGroupStart();
  for (int i = 0; i < ndev; i++) {
    int d = devlist ? devlist[i] : i;
    if (d < 0 || d >= ndevices) { ncclGroupEnd(); cudaSetDevice(saved); return bad("ncclCommInitAll", fmt("device %d does not exist (CUSIM_DEVICE_COUNT=%d)", d, ndevices)); }
    cudaSetDevice(d);
    ncclCommInitRank(&comms[i], ndev, id, i);
  }
  ncclGroupEnd();
  cudaSetDevice(saved);
  return ncclSuccess;
}

ncclResult_t ncclGroupStart() { t_group_depth++; return ncclSuccess; }

ncclResult_t ncclGroupEnd() {
  if (t_group_depth == 0) return bad("ncclGroupEnd", "without ncclGroupStart", ncclInvalidUsage);
  if (--t_group_depth > 0) return ncclSuccess;
  std::vector<ncclComm *> inits;
  inits.swap(t_group_inits);
  Lock lk = cusim::lock();
  for (ncclComm *c : inits)
    if (ncclResult_t r = wait_joined(lk, *c->clique)) return r;
  return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t comm) { return comm ? ncclSuccess : ncclInvalidArgument; }

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return ncclInvalidArgument;
  Lock lk = cusim::lock();
  comm->dead = true;  // kept allocated: queued operations may still refer to it
  return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (!comm) return ncclInvalidArgument;
  Lock lk = cusim::lock();
  comm->dead = true;
  comm->clique->aborted = true;  // every rank's pending and future collectives fail
  for (ncclComm *m : comm->clique->ranks)
    if (m && m != comm && m->async_error == ncclSuccess) m->async_error = ncclRemoteError;
  cusim::cv().notify_all();
  return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *err) {
  if (!comm) return ncclInvalidArgument;
  Lock lk = cusim::lock();
  *err = comm->async_error;
  return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int *n) { *n = comm->clique->nranks; return ncclSuccess; }
ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int *d) { *d = comm->device; return ncclSuccess; }
ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *r) { *r = comm->rank; return ncclSuccess; }

ncclResult_t ncclAllReduce(const void *s, void *r, size_t n, ncclDataType_t t, ncclRedOp_t op, ncclComm_t c, cudaStream_t st) {
  return post(C_ALLREDUCE, s, r, n, t, op, 0, c, st);
}
ncclResult_t ncclAllGather(const void *s, void *r, size_t n, ncclDataType_t t, ncclComm_t c, cudaStream_t st) {
  return post(C_ALLGATHER, s, r, n, t, ncclSum, 0, c, st);
}
ncclResult_t ncclReduceScatter(const void *s, void *r, size_t n, ncclDataType_t t, ncclRedOp_t op, ncclComm_t c, cudaStream_t st) {
  return post(C_REDUCESCATTER, s, r, n, t, op, 0, c, st);
}
ncclResult_t ncclBroadcast(const void *s, void *r, size_t n, ncclDataType_t t, int root, ncclComm_t c, cudaStream_t st) {
  return post(C_BROADCAST, s, r, n, t, ncclSum, root, c, st);
}
ncclResult_t ncclBcast(void *b, size_t n, ncclDataType_t t, int root, ncclComm_t c, cudaStream_t st) {
  return post(C_BROADCAST, b, b, n, t, ncclSum, root, c, st);
}
ncclResult_t ncclReduce(const void *s, void *r, size_t n, ncclDataType_t t, ncclRedOp_t op, int root, ncclComm_t c, cudaStream_t st) {
  return post(C_REDUCE, s, r, n, t, op, root, c, st);
}

const char *ncclGetErrorString(ncclResult_t r) {
  switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
  }
}

const char *ncclGetLastError(ncclComm_t) { return cusim_last_error_message(); }
