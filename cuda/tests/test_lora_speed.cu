// test_lora_speed.cu: kernel benchmark (printed, not asserted) of the batched multi-LoRA kernels
// (lora.h) at Llama-2-7B shapes: a decode batch of M rows (1 row each on its own slot: the gather
// GEMV) and a prefill batch (one slot, rows in tiles), rank 16, for a q/k/v/o-size projection
// (n = k = 4096) and gate/up (n = 11008, k = 4096) and down (n = 4096, k = 11008). Per case: the
// median of 50 timed calls (CUDA events) after 5 warm-ups and the effective bandwidth over the
// compulsory bytes (each distinct adapter's A and B once, x and out), to set against
// python/tools/lora_roofline.py (bench/results/lora_roofline_llama2_7b.md).
//
// On a GPU (ctest -L gpu, or run gpu_test_lora_speed). Under cusim it runs one tiny shape so the
// code path stays exercised; the times are meaningless there.
#include "../lora.cu"

#include <algorithm>

#include "test_util.cuh"

namespace {

float median_us(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return 1000.0f * v[v.size() / 2];
}

// M rows; `distinct` adapters (row t on slot t % distinct); tiles when one slot serves runs
void bench(int n, int k, int M, int distinct, int rank, int reps) {
    Rng rng((unsigned long long)n * 131 + k * 7 + M * 3 + distinct);
    std::vector<llmrt_cuda_lora_slot> slots(distinct);
    std::vector<void *> bufs;
    for (int s = 0; s < distinct; s++) {
        std::vector<__half> a((size_t)rank * k), b((size_t)n * rank);
        for (auto &v : a) v = __float2half(rng.uniform(-0.05f, 0.05f));
        for (auto &v : b) v = __float2half(rng.uniform(-0.05f, 0.05f));
        __half *da = to_dev(a), *db = to_dev(b);
        bufs.push_back(da), bufs.push_back(db);
        slots[s] = {da, db, rank, 0};
    }
    llmrt_cuda_lora_slot *dslots = to_dev(slots);
    std::vector<__half> x((size_t)M * k);
    for (auto &v : x) v = __float2half(rng.uniform(-1.0f, 1.0f));
    __half *dx = to_dev(x), *dout = dev_alloc<__half>((size_t)M * n);
    std::vector<int32_t> row_slot(M), tile_row(M), tile_len(M);
    std::vector<float> row_scale(M, 1.0f);
    for (int t = 0; t < M; t++) row_slot[t] = distinct == 1 ? 0 : t % distinct;
    llmrt_cuda_lora_args a{};
    int32_t n_tiles = llmrt_cuda_lora_tiles(row_slot.data(), M, tile_row.data(), tile_len.data(),
                                            a.n_class);
    tile_row.resize(n_tiles > 0 ? n_tiles : 1), tile_len.resize(n_tiles > 0 ? n_tiles : 1);
    const int splits = llmrt_cuda_lora_splits(k);
    a.dtype = LLMRT_CUDA_F16, a.out = dout, a.x = dx, a.n = n, a.k = k, a.n_rows = M;
    a.slots = dslots, a.n_slots = distinct, a.max_rank = rank, a.ld_tmp = rank;
    a.tmp = dev_alloc<float>((size_t)M * splits * rank);
    a.row_slot = to_dev(row_slot), a.row_scale = to_dev(row_scale);
    a.tile_row = to_dev(tile_row), a.tile_len = to_dev(tile_len);
    cudaEvent_t e0, e1;
    CUDA_OK(cudaEventCreate(&e0));
    CUDA_OK(cudaEventCreate(&e1));
    for (int i = 0; i < 5; i++) CHECK(llmrt_cuda_lora_apply(nullptr, &a) == 0);
    std::vector<float> ms;
    for (int i = 0; i < reps; i++) {
        CUDA_OK(cudaEventRecord(e0));
        CHECK(llmrt_cuda_lora_apply(nullptr, &a) == 0);
        CUDA_OK(cudaEventRecord(e1));
        CUDA_OK(cudaEventSynchronize(e1));
        float v = 0;
        CUDA_OK(cudaEventElapsedTime(&v, e0, e1));
        ms.push_back(v);
    }
    const float  us    = median_us(ms);
    const double bytes = 2.0 * distinct * rank * ((double)n + k) + 2.0 * M * (k + 2.0 * n);
    printf("n=%-5d k=%-5d M=%-4d distinct=%-3d r=%d: %8.1f us  %6.0f GB/s  (%d tiles)\n", n, k, M,
           distinct, rank, us, bytes / (us * 1e3), n_tiles);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    for (void *p : bufs) cudaFree(p);
    cudaFree(dslots), cudaFree(dx), cudaFree(dout), cudaFree(a.tmp);
    cudaFree((void *)a.row_slot), cudaFree((void *)a.row_scale);
    cudaFree((void *)a.tile_row), cudaFree((void *)a.tile_len);
}

} // namespace

int main() {
    require_device();
    cudaDeviceProp prop{};
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s (%d SMs)\n", prop.name, prop.multiProcessorCount);
#ifdef CUSIM
    bench(96, 72, 3, 3, 8, 1);  // decode: rows on their own slots
    bench(96, 72, 20, 1, 8, 1); // prefill: one slot, tiles
#else
    const int shapes[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    for (const auto &s : shapes) {
        for (int M : {1, 16, 64}) bench(s[0], s[1], M, M, 16, 50); // decode, every row its own
        bench(s[0], s[1], 16, 4, 16, 50);                          // 16 rows over 4 adapters
        bench(s[0], s[1], 512, 1, 16, 50);                         // a 512-token prefill
    }
#endif
    return test_summary("test_lora_speed");
}
