/* Memory for what the CPU kernels stream every step: weights repacked at load (int8, 4-bit and
 * bf16 panels) and the backend's buffers (KV cache, norms). Placed on 2 MiB pages where the
 * kernel allows it (transparent huge pages, MADV_HUGEPAGE), because a decode step reads every
 * weight byte once: on 4 KiB pages that is a TLB miss per page and a hardware prefetch stream
 * cut at every page boundary.
 *
 * Most repacked matrices are far smaller than a 2 MiB page (SmolLM2-135M: 69-553 KB), so they
 * are carved in order from shared 32 MiB chunks: a layer's matrices then also lie next to each
 * other, as a decode step reads them. A chunk returns to the system when its last block is
 * freed. Blocks of 8 MiB and more get their own mapping. Under AddressSanitizer every block is
 * its own allocation, so that overflows past a block are still caught. */
#ifndef LLMRT_BACKEND_CPU_MEMORY_H
#define LLMRT_BACKEND_CPU_MEMORY_H

#include <stdbool.h>
#include <stddef.h>

/* bytes (not zeroed), 64-byte aligned; NULL when out of memory or bytes is 0. Thread-safe. */
void *llmrt_cpu_mem_alloc(size_t bytes);
/* frees a block of llmrt_cpu_mem_alloc; NULL is ignored */
void  llmrt_cpu_mem_free(void *p);
/* whether small blocks are carved from shared chunks (false under AddressSanitizer) */
bool  llmrt_cpu_mem_chunked(void);
/* Asks the kernel to reclaim the whole pages inside [p, p + bytes) (MADV_PAGEOUT; nothing where
 * the kernel lacks it). Their contents stay as they were (a file mapping's pages are re-read
 * from the file, anonymous ones come back from swap, or stay without swap): used after a
 * matrix was copied out of a model file's mapping and is not read there again. */
void  llmrt_cpu_mem_page_out(const void *p, size_t bytes);

#endif
