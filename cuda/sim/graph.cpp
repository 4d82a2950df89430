// graph.cpp: CUDA graphs through stream capture (NVIDIA's prototypes, cuda_runtime_api.h).
// While a stream captures, runtime.cpp's enqueue() appends its operations (kernel launches with
// their arguments copied at the launch, async copies, memsets, cuBLAS calls, host functions) to
// the capture instead of running them; the calls that CUDA forbids during a capture (a
// synchronisation of the capturing stream, a "potentially unsafe" call such as cudaMalloc or
// cudaMemcpy in global / thread-local mode, the legacy stream next to a capturing blocking
// stream) invalidate it (runtime.cpp: capture_gate, unsafe_call, sync_gate). A graph is the
// captured list; an executable graph is a copy of it, and a launch enqueues one operation that
// runs every node in capture order with the values captured (a linear chain: cusim captures one
// stream, so there are no forks to order).
#include "internal.h"

#include <atomic>
#include <memory>
#include <set>

namespace cusim {
namespace {

using Nodes = std::vector<std::function<void(Lock &)>>;

struct Graph {
    std::shared_ptr<const Nodes> nodes;
    std::vector<char> node_handles; // distinct addresses to hand out as cudaGraphNode_t
};
struct GraphExec {
    std::shared_ptr<const Nodes> nodes; // shared with the graph: nodes are immutable once captured
    int device = 0;
};

std::set<Graph *> &graphs() {
    static std::set<Graph *> *g = new std::set<Graph *>();
    return *g;
}
std::set<GraphExec *> &execs() {
    static std::set<GraphExec *> *g = new std::set<GraphExec *>();
    return *g;
}
std::atomic<unsigned long long> g_capture_ids{0};

cudaError_t fail(cudaError_t e, const char *api, const std::string &why) {
    report(fmt("%s: %s", api, why.c_str()));
    return e;
}

} // namespace
} // namespace cusim

using namespace cusim;

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
    Lock lk = cusim::lock();
    cudaError_t e;
    Stream *s = get_stream(stream, &e);
    if (!s) return e;
    if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
        mode != cudaStreamCaptureModeRelaxed)
        return fail(cudaErrorInvalidValue, "cudaStreamBeginCapture",
                    fmt("mode %d is not a capture mode", (int)mode));
    if (stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread)
        return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture",
                    "the legacy default stream cannot be captured (use a stream of your own)");
    if (stream_capture(s))
        return fail(cudaErrorIllegalState, "cudaStreamBeginCapture",
                    "the stream is already capturing");
    if (cudaError_t st = sticky_error(stream_device(s))) return st;
    Capture *c = new Capture();
    c->s = s;
    c->mode = mode;
    c->owner = std::this_thread::get_id();
    c->id = ++g_capture_ids;
    set_stream_capture(s, c);
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
    Lock lk = cusim::lock();
    cudaError_t e;
    Stream *s = get_stream(stream, &e);
    if (!s) return e;
    if (!graph) return fail(cudaErrorInvalidValue, "cudaStreamEndCapture", "graph is NULL");
    *graph = nullptr;
    Capture *c = stream_capture(s);
    if (!c)
        return fail(cudaErrorIllegalState, "cudaStreamEndCapture", "the stream is not capturing");
    if (c->mode != cudaStreamCaptureModeRelaxed && c->owner != std::this_thread::get_id())
        return fail(cudaErrorStreamCaptureWrongThread, "cudaStreamEndCapture",
                    "a global / thread-local capture must end in the thread that began it");
    set_stream_capture(s, nullptr);
    std::unique_ptr<Capture> done(c);
    if (c->invalid)
        return fail(cudaErrorStreamCaptureInvalidated, "cudaStreamEndCapture",
                    fmt("the capture was invalidated: %s", c->why.c_str()));
    Graph *g = new Graph();
    g->nodes = std::make_shared<const Nodes>(std::move(c->nodes));
    g->node_handles.resize(std::max<size_t>(g->nodes->size(), 1));
    graphs().insert(g);
    *graph = reinterpret_cast<cudaGraph_t>(g);
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus *status) {
    Lock lk = cusim::lock();
    cudaError_t e;
    Stream *s = get_stream(stream, &e);
    if (!s) return e;
    if (!status) return cudaErrorInvalidValue;
    const Capture *c = stream_capture(s);
    *status = !c           ? cudaStreamCaptureStatusNone
              : c->invalid ? cudaStreamCaptureStatusInvalidated
                           : cudaStreamCaptureStatusActive;
    // the legacy stream while a blocking stream of its device captures: CUDA answers
    // cudaErrorStreamCaptureImplicit (the query itself would be an implicit dependency)
    if (!c) return capture_gate(lk, s, "cudaStreamIsCapturing");
    return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t *nodes, size_t *num) {
    Lock lk = cusim::lock();
    Graph *g = reinterpret_cast<Graph *>(graph);
    if (!graphs().count(g) || !num)
        return fail(cudaErrorInvalidValue, "cudaGraphGetNodes", "not a live graph");
    size_t n = g->nodes->size();
    if (!nodes) { // the count
        *num = n;
        return cudaSuccess;
    }
    for (size_t i = 0; i < *num; i++) // entries past the last node are NULL
        nodes[i] = i < n ? reinterpret_cast<cudaGraphNode_t>(&g->node_handles[i]) : nullptr;
    *num = std::min(n, *num);
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long) {
    Lock lk = cusim::lock();
    Graph *g = reinterpret_cast<Graph *>(graph);
    if (!exec) return fail(cudaErrorInvalidValue, "cudaGraphInstantiate", "pGraphExec is NULL");
    *exec = nullptr;
    if (!graphs().count(g))
        return fail(cudaErrorInvalidValue, "cudaGraphInstantiate", "not a live graph");
    GraphExec *x = new GraphExec();
    x->nodes = g->nodes;
    x->device = current_device();
    execs().insert(x);
    *exec = reinterpret_cast<cudaGraphExec_t>(x);
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    Lock lk = cusim::lock();
    GraphExec *x = reinterpret_cast<GraphExec *>(exec);
    if (!execs().count(x))
        return fail(cudaErrorInvalidResourceHandle, "cudaGraphLaunch",
                    "not a live executable graph");
    cudaError_t e;
    Stream *s = get_stream(stream, &e);
    if (!s) return e;
    if (cudaError_t st = sticky_error(stream_device(s))) return st;
    if (stream_device(s) != x->device)
        return fail(cudaErrorInvalidValue, "cudaGraphLaunch",
                    fmt("the graph was instantiated on device %d, the stream is on device %d",
                        x->device, stream_device(s)));
    if (stream_capture(s)) // CUDA would add a child-graph node; cusim does not simulate it
        return fail(cudaErrorStreamCaptureUnsupported, "cudaGraphLaunch",
                    "a graph launch inside a capture is not simulated");
    if (cudaError_t ge = capture_gate(lk, s, "cudaGraphLaunch")) return ge;
    // the nodes stay alive while the launch is queued, even if the exec is destroyed (as in CUDA)
    std::shared_ptr<const Nodes> nodes = x->nodes;
    enqueue(lk, s, [nodes](Lock &l) {
        for (const auto &n : *nodes)
            n(l);
    });
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    Lock lk = cusim::lock();
    GraphExec *x = reinterpret_cast<GraphExec *>(exec);
    if (!execs().erase(x))
        return fail(cudaErrorInvalidValue, "cudaGraphExecDestroy", "not a live executable graph");
    delete x;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    Lock lk = cusim::lock();
    Graph *g = reinterpret_cast<Graph *>(graph);
    if (!graphs().erase(g))
        return fail(cudaErrorInvalidValue, "cudaGraphDestroy", "not a live graph");
    delete g;
    return cudaSuccess;
}
