// CUDA graphs through stream capture: launches, async copies and memsets on a capturing stream are
// recorded, not run; a replay runs them in order with the kernel arguments of the capture and
// the memory contents of the replay; calls CUDA forbids during a capture (a synchronisation of
// the capturing stream, cudaMalloc / cudaMemcpy / cudaDeviceSynchronize in global mode) fail and
// invalidate it, so cudaStreamEndCapture fails; relaxed mode allows cudaMalloc. Every expected
// value is computed here from the inputs, never taken from a previous run.
#include "test_util.cuh"

__global__ void k_scale_add(const float *x, float *y, float a, int n) { // y[n] = a * x[n] + y[n]
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}

static const int N = 300;

// A graph: x <- host_in (pinned, H2D), y <- 0 (memset), y += a * x, out <- y (pinned, D2H).
struct Fixture {
    cudaStream_t s = nullptr;
    float *x = nullptr, *y = nullptr, *in = nullptr, *out = nullptr;
    Fixture() {
        CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        CUDA_OK(cudaMalloc(&x, N * sizeof(float)));
        CUDA_OK(cudaMalloc(&y, N * sizeof(float)));
        CUDA_OK(cudaMallocHost(&in, N * sizeof(float)));
        CUDA_OK(cudaMallocHost(&out, N * sizeof(float)));
    }
    ~Fixture() {
        CUDA_OK(cudaFree(x));
        CUDA_OK(cudaFree(y));
        CUDA_OK(cudaFreeHost(in));
        CUDA_OK(cudaFreeHost(out));
        CUDA_OK(cudaStreamDestroy(s));
    }
    // the recorded work; returns the first error
    cudaError_t record(float a) {
        cudaError_t e = cudaMemcpyAsync(x, in, N * sizeof(float), cudaMemcpyHostToDevice, s);
        if (!e) e = cudaMemsetAsync(y, 0, N * sizeof(float), s);
        if (!e) {
            LAUNCH(k_scale_add, (N + 127) / 128, 128, 0, s, (const float *)x, y, a, N);
            e = cudaGetLastError();
        }
        if (!e) e = cudaMemcpyAsync(out, y, N * sizeof(float), cudaMemcpyDeviceToHost, s);
        return e;
    }
};

static void test_capture_and_replay() {
    Fixture f;
    for (int i = 0; i < N; i++)
        f.in[i] = (float)i, f.out[i] = -7.0f;
    cudaStreamCaptureStatus st;
    CUDA_OK(cudaStreamIsCapturing(f.s, &st));
    CHECK(st == cudaStreamCaptureStatusNone);
    float a = 3.0f;
    CUDA_OK(cudaStreamBeginCapture(f.s, cudaStreamCaptureModeGlobal));
    CUDA_OK(cudaStreamIsCapturing(f.s, &st));
    CHECK(st == cudaStreamCaptureStatusActive);
    CUDA_OK(f.record(a));
    a = 100.0f; // the kernel argument was copied at the launch: the graph keeps 3
    cudaGraph_t g = nullptr;
    CUDA_OK(cudaStreamEndCapture(f.s, &g));
    CHECK(g != nullptr);
    CUDA_OK(cudaStreamIsCapturing(f.s, &st));
    CHECK(st == cudaStreamCaptureStatusNone);
    size_t n_nodes = 0;
    CUDA_OK(cudaGraphGetNodes(g, nullptr, &n_nodes));
    CHECKF(n_nodes == 4, "%zu nodes", n_nodes); // H2D copy, memset, kernel, D2H copy
    CUDA_OK(cudaStreamSynchronize(f.s));
    bool untouched = true; // nothing ran at capture time
    for (int i = 0; i < N; i++)
        untouched &= f.out[i] == -7.0f;
    CHECK(untouched);

    cudaGraphExec_t x = nullptr;
    CUDA_OK(cudaGraphInstantiate(&x, g, 0));
    CUDA_OK(cudaGraphDestroy(g)); // the executable graph does not need it
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < N; i++)
            f.in[i] = (float)(i * (rep + 1)) - 5.0f; // read at the replay
        CUDA_OK(cudaGraphLaunch(x, f.s));
        CUDA_OK(cudaStreamSynchronize(f.s));
        int bad = 0;
        for (int i = 0; i < N; i++)
            bad += f.out[i] != 3.0f * ((float)(i * (rep + 1)) - 5.0f);
        CHECKF(bad == 0, "replay %d: %d wrong values", rep, bad);
    }
    // eager work on the stream in between keeps stream order with the replays
    for (int i = 0; i < N; i++)
        f.in[i] = 1.0f;
    CUDA_OK(f.record(2.0f));
    CUDA_OK(cudaGraphLaunch(x, f.s));
    CUDA_OK(cudaStreamSynchronize(f.s));
    CHECK(f.out[0] == 3.0f && f.out[N - 1] == 3.0f);
    CUDA_OK(cudaGraphExecDestroy(x));
}

// Ends the (invalidated) capture on f.s and checks that it fails and gives no graph.
static void expect_invalidated(Fixture &f, const char *what) {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    CUDA_OK(cudaStreamIsCapturing(f.s, &st));
    CHECKF(st == cudaStreamCaptureStatusInvalidated, "%s: status %d", what, (int)st);
    cudaGraph_t g = (cudaGraph_t)0x1;
    cudaError_t e = cudaStreamEndCapture(f.s, &g);
    CHECKF(e == cudaErrorStreamCaptureInvalidated, "%s: cudaStreamEndCapture gave %s", what,
           cudaGetErrorName(e));
    CHECK(g == nullptr);
    (void)cudaGetLastError();
    CUDA_OK(cudaStreamIsCapturing(f.s, &st));
    CHECK(st == cudaStreamCaptureStatusNone);
}

static void test_prohibited_calls() {
    Fixture f;
    for (int i = 0; i < N; i++)
        f.in[i] = 1.0f;
    // synchronising the capturing stream
    CUDA_OK(cudaStreamBeginCapture(f.s, cudaStreamCaptureModeGlobal));
    CUDA_OK(f.record(1.0f));
    cudaError_t e = cudaStreamSynchronize(f.s);
    CHECKF(e == cudaErrorStreamCaptureUnsupported, "cudaStreamSynchronize: %s",
           cudaGetErrorName(e));
    (void)cudaGetLastError();
    e = f.record(1.0f); // work after the invalidation is refused
    CHECKF(e == cudaErrorStreamCaptureInvalidated, "launch into an invalidated capture: %s",
           cudaGetErrorName(e));
    (void)cudaGetLastError();
    expect_invalidated(f, "cudaStreamSynchronize");

    // cudaMalloc in global mode
    CUDA_OK(cudaStreamBeginCapture(f.s, cudaStreamCaptureModeGlobal));
    void *p = nullptr;
    e = cudaMalloc(&p, 256);
    CHECKF(e == cudaErrorStreamCaptureUnsupported, "cudaMalloc: %s", cudaGetErrorName(e));
    (void)cudaGetLastError();
    expect_invalidated(f, "cudaMalloc");

    // cudaDeviceSynchronize
    CUDA_OK(cudaStreamBeginCapture(f.s, cudaStreamCaptureModeGlobal));
    e = cudaDeviceSynchronize();
    CHECKF(e == cudaErrorStreamCaptureUnsupported, "cudaDeviceSynchronize: %s",
           cudaGetErrorName(e));
    (void)cudaGetLastError();
    expect_invalidated(f, "cudaDeviceSynchronize");

    // a synchronous cudaMemcpy (global mode): refused, the capture invalidated
    CUDA_OK(cudaStreamBeginCapture(f.s, cudaStreamCaptureModeGlobal));
    float v = 0.0f;
    e = cudaMemcpy(&v, f.x, sizeof v, cudaMemcpyDeviceToHost);
    CHECKF(e == cudaErrorStreamCaptureUnsupported || e == cudaErrorStreamCaptureImplicit,
           "cudaMemcpy: %s", cudaGetErrorName(e));
    (void)cudaGetLastError();
    expect_invalidated(f, "cudaMemcpy");

    // an event recorded inside the capture cannot be queried
    cudaEvent_t ev;
    CUDA_OK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    CUDA_OK(cudaStreamBeginCapture(f.s, cudaStreamCaptureModeGlobal));
    CUDA_OK(cudaEventRecord(ev, f.s));
    e = cudaEventQuery(ev);
    CHECKF(e == cudaErrorCapturedEvent, "cudaEventQuery: %s", cudaGetErrorName(e));
    (void)cudaGetLastError();
    cudaGraph_t g = nullptr;
    e = cudaStreamEndCapture(f.s, &g);
    if (e == cudaSuccess) CUDA_OK(cudaGraphDestroy(g));
    (void)cudaGetLastError();
    CUDA_OK(cudaEventDestroy(ev));

    // relaxed mode allows cudaMalloc; the capture stays valid and the graph runs
    CUDA_OK(cudaStreamBeginCapture(f.s, cudaStreamCaptureModeRelaxed));
    CUDA_OK(f.record(2.0f));
    CUDA_OK(cudaMalloc(&p, 256));
    cudaStreamCaptureStatus st;
    CUDA_OK(cudaStreamIsCapturing(f.s, &st));
    CHECK(st == cudaStreamCaptureStatusActive);
    CUDA_OK(cudaStreamEndCapture(f.s, &g));
    CUDA_OK(cudaFree(p));
    cudaGraphExec_t x;
    CUDA_OK(cudaGraphInstantiate(&x, g, 0));
    for (int i = 0; i < N; i++)
        f.in[i] = (float)i;
    CUDA_OK(cudaGraphLaunch(x, f.s));
    CUDA_OK(cudaStreamSynchronize(f.s));
    CHECK(f.out[7] == 14.0f && f.out[N - 1] == 2.0f * (N - 1));
    CUDA_OK(cudaGraphExecDestroy(x));
    CUDA_OK(cudaGraphDestroy(g));

    // API misuse
    e = cudaStreamEndCapture(f.s, &g);
    CHECKF(e == cudaErrorIllegalState, "cudaStreamEndCapture without a capture: %s",
           cudaGetErrorName(e));
    (void)cudaGetLastError();
    CUDA_OK(cudaStreamBeginCapture(f.s, cudaStreamCaptureModeGlobal));
    e = cudaStreamBeginCapture(f.s, cudaStreamCaptureModeGlobal);
    CHECKF(e == cudaErrorIllegalState, "a second cudaStreamBeginCapture: %s", cudaGetErrorName(e));
    (void)cudaGetLastError();
    CUDA_OK(cudaStreamEndCapture(f.s, &g)); // an empty graph
    size_t n = 99;
    CUDA_OK(cudaGraphGetNodes(g, nullptr, &n));
    CHECK(n == 0);
    CUDA_OK(cudaGraphDestroy(g));
    e = cudaStreamBeginCapture(cudaStreamLegacy, cudaStreamCaptureModeGlobal);
    CHECKF(e != cudaSuccess, "capturing the legacy stream: %s", cudaGetErrorName(e));
    (void)cudaGetLastError();
    // the stream works normally after all this
    CUDA_OK(f.record(1.0f));
    CUDA_OK(cudaStreamSynchronize(f.s));
    CHECK(f.out[5] == 5.0f);
}

int main() {
    require_device();
    test_capture_and_replay();
    test_prohibited_calls();
    return test_summary("test_graph");
}
