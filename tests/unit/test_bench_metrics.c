/* The serving metrics on synthetic timelines whose TTFT / TPOT / ITL / E2E are known by
 * construction (DESIGN.md definitions), including percentiles against numpy's linear method. */
#include <stdlib.h>

#include "../bench/bench_metrics.h"
#include "test_util.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-9)

int main(void) {
    /* request 0: submit 0, tokens at 0.1, 0.2, 0.3  -> TTFT 100 ms, E2E 300, TPOT 100, ITL 100,100
     * request 1: submit 1, tokens at 1.5, 1.6       -> TTFT 500 ms, E2E 600, TPOT 100, ITL 100
     * request 2: submit 2, one token at 2.05        -> TTFT 50 ms,  E2E 50, no TPOT, no ITL
     * request 3: failed */
    double         t0[] = {0.1, 0.2, 0.3}, t1[] = {1.5, 1.6}, t2[] = {2.05};
    bench_timeline tl[4] = {
        {.t_submit = 0.0, .t_tokens = t0, .n_tokens = 3, .n_prompt = 10},
        {.t_submit = 1.0, .t_tokens = t1, .n_tokens = 2, .n_prompt = 20},
        {.t_submit = 2.0, .t_tokens = t2, .n_tokens = 1, .n_prompt = 30},
        {.t_submit = 3.0, .failed = true},
    };
    bench_slo     slo = {.ttft_ms = 200};
    bench_summary s;
    bench_summarize(tl, 4, 4.0, &slo, &s);
    CHECK(s.completed == 3 && s.failed == 1);
    CHECK(s.total_input_tokens == 60 && s.total_output_tokens == 6);
    CHECK(NEAR(s.output_throughput, 6 / 4.0));
    CHECK(NEAR(s.total_token_throughput, 66 / 4.0));
    CHECK(NEAR(s.request_throughput, 3 / 4.0));
    CHECK(NEAR(s.request_goodput, 2 / 4.0)); /* request 1's TTFT of 500 ms misses the SLO */
    CHECK(s.ttft_ms.n == 3 && NEAR(s.ttft_ms.mean, (100 + 500 + 50) / 3.0));
    CHECK(NEAR(s.ttft_ms.median, 100));
    CHECK(NEAR(s.ttft_ms.min, 50) && NEAR(s.ttft_ms.max, 500));
    /* numpy.percentile([50,100,500], 90) = 100 + 0.8 * 400 = 420 */
    CHECK_MSG(fabs(s.ttft_ms.p90 - 420) < 1e-6, "p90 %f", s.ttft_ms.p90);
    CHECK(fabs(s.ttft_ms.p99 - (100 + 0.98 * 400)) < 1e-6);
    CHECK(s.tpot_ms.n == 2 && fabs(s.tpot_ms.mean - 100) < 1e-6);
    CHECK(s.itl_ms.n == 3 && fabs(s.itl_ms.mean - 100) < 1e-6 && fabs(s.itl_ms.std) < 1e-6);
    CHECK(s.e2el_ms.n == 3 && fabs(s.e2el_ms.mean - (300 + 600 + 50) / 3.0) < 1e-6);

    /* uneven gaps: ITL percentiles are over gaps, TPOT over requests */
    double         g[] = {0.010, 0.020, 0.050, 0.060, 0.160};
    bench_timeline u   = {.t_submit = 0, .t_tokens = g, .n_tokens = 5, .n_prompt = 1};
    bench_summarize(&u, 1, 1.0, NULL, &s);
    CHECK(fabs(s.ttft_ms.mean - 10) < 1e-9);
    CHECK(fabs(s.tpot_ms.mean - (160.0 - 10.0) / 4) < 1e-9);
    /* gaps 10, 30, 10, 100 -> sorted 10,10,30,100 -> median 20, std (population) */
    CHECK(fabs(s.itl_ms.median - 20) < 1e-9);
    double mean = 37.5, var = ((10 - mean) * (10 - mean) * 2 + (30 - mean) * (30 - mean) +
                               (100 - mean) * (100 - mean)) / 4;
    CHECK(fabs(s.itl_ms.std - sqrt(var)) < 1e-9);
    CHECK(fabs(s.request_goodput - 1.0) < 1e-9); /* no SLO: every completed request counts */

    bench_summarize(NULL, 0, 1.0, NULL, &s); /* empty run */
    CHECK(s.completed == 0 && s.ttft_ms.n == 0 && s.output_throughput == 0);
    return test_summary("test_bench_metrics");
}
