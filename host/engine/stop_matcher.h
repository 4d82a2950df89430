/* Stop strings on streamed text (vLLM `stop` with include_stop_str_in_output = false).
 *
 * Text arrives in deltas. The matcher emits text as soon as it cannot be part of a stop string:
 * it holds back the longest suffix of the pending text that is a proper prefix of some stop
 * string, so a stop string split across deltas is caught and never partially emitted. When a
 * stop string completes, only the text before it is emitted and the matcher is done.
 *
 * Which match wins: the occurrence that ENDS first in the text; among occurrences ending at the
 * same byte, the longest (earliest-starting) one. This rule makes the result independent of how
 * the text is split into deltas (feeding byte by byte gives the same emitted text and `which`).
 * (vLLM checks stop strings in list order on each new delta; the two agree unless stop strings
 * overlap.)
 *
 * Works on bytes: stop strings are complete UTF-8 and deltas hold complete characters, so the
 * held-back suffix always starts on a character boundary and emitted text stays valid UTF-8. */
#ifndef LLMRT_ENGINE_STOP_MATCHER_H
#define LLMRT_ENGINE_STOP_MATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"

#define LLMRT_STOP_MAX_STRINGS 16
#define LLMRT_STOP_MAX_BYTES   256

typedef struct llmrt_stop_matcher llmrt_stop_matcher;

/* Copies the strings. n_stops in [0, 16] (0 passes text through); each string non-empty and at
 * most 256 bytes; otherwise LLMRT_ERR_INVALID_ARG naming the string's index. */
llmrt_status llmrt_stop_matcher_create(const char *const *stops, int32_t n_stops,
                                       llmrt_stop_matcher **out, llmrt_error *err);
void         llmrt_stop_matcher_destroy(llmrt_stop_matcher *m);

/* Feeds `len` bytes. *emit / *emit_len: text safe to emit now, owned by the matcher and valid
 * until the next call on it. *stopped: a stop string has completed (now or earlier); then emit
 * holds the text before it, *which is its index (-1 otherwise) and later feeds emit nothing.
 * Fails only on allocation failure or a NULL delta with len > 0. */
llmrt_status llmrt_stop_matcher_feed(llmrt_stop_matcher *m, const char *delta, size_t len,
                                     const char **emit, size_t *emit_len, bool *stopped,
                                     int32_t *which, llmrt_error *err);

/* End of stream: releases the held-back text (nothing after a stop). Feeding may continue. */
void llmrt_stop_matcher_flush(llmrt_stop_matcher *m, const char **emit, size_t *emit_len);

/* Whether a stop string has matched. */
bool llmrt_stop_matcher_stopped(const llmrt_stop_matcher *m);

#endif
