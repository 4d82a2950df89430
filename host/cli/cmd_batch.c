/* llmrt batch: a batch generation job. One request per input line (JSONL):
 *   {"custom_id": "a1", "prompt": "..."}                       raw text
 *   {"custom_id": "a2", "messages": [{"role": "user", ...}]}   chat
 *   {"custom_id": "a3", "prompt_token_ids": [1, 2, 3]}
 * with optional sampling fields (max_tokens, temperature, top_p, top_k, min_p, seed, stop,
 * stop_token_ids, presence_penalty, frequency_penalty, repetition_penalty, ignore_eos,
 * logprobs, n, max_completion_tokens), at the top level or inside an OpenAI-batch style "body"
 * object; types and ranges are request_fields.c's, and an unknown field is an error record.
 * Output: one JSON line per input line, {"custom_id", "response": {...}, "error": null} or
 * {"custom_id", "line", "response": null, "error": {"code", "message"}} for a bad line; a line
 * without a string custom_id gets "custom_id": null (its "line" says which). LoRA adapters
 * (--lora-module NAME=PATH): "lora": "NAME" (and "lora_scale") runs the line with that adapter;
 * as in vLLM, a "model" equal to an adapter's name selects it and the base model's name (the -m
 * path or its last component) selects none, any other "model" is an error record; without
 * --lora-module, "model" is not looked at; "lora" wins over "model". Lines naming none get
 * --lora-name's. With "n" > 1 the response also lists "choices": [{"index", "text",
 * "finish_reason", "completion_tokens"}] (one per sequence, like OpenAI's n); its "text" and
 * "finish_reason" are choice 0's and its "completion_tokens" the sum over the choices.
 * Robustness (batch_output.h has the contract): every record is one write(2) in append mode,
 * checked; a failed write cuts the file back to its last complete record and stops the job with
 * exit 1. On start the whole output is validated: a torn last line (a kill mid-write) is cut off,
 * damage before it is refused naming the line, and custom_ids already present are skipped, so
 * an interrupted job resumes without loss or duplicates. --ordered writes in input order. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <stdint.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_json.h"
#include "cli_options.h"
#include "batch_request.h"
#include "batch_shards.h"
#include "batch_output.h"
#include "id_set.h"
#include "llmrt_experimental.h"

/* --------------------------------------------------------------------------------------------- */
/* output records                                                                                */
/* --------------------------------------------------------------------------------------------- */

/* Each returns the record as a malloc'd JSON text (cJSON_free), NULL when out of memory. */
static char *format_error(const char *custom_id, int64_t line_no, const char *code,
                          const char *message) {
    cJSON *o = cJSON_CreateObject();
    /* a line without a string custom_id: null, and the line says which (a made-up id could
     * be another line's custom_id) */
    if (custom_id) cJSON_AddStringToObject(o, "custom_id", custom_id);
    else cJSON_AddNullToObject(o, "custom_id");
    cJSON_AddNumberToObject(o, "line", (double)line_no);
    cJSON_AddNullToObject(o, "response");
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    char *s = cJSON_PrintUnformatted(o); /* NULL if any Add above failed */
    cJSON_Delete(o);
    return s;
}

static char *format_result(const job_line *j) {
    static const char *reasons[] = {"none", "stop", "length", "abort", "error"};
    for (int32_t i = 0; i < j->n_ch; i++)
        if (j->ch[i].finish == LLMRT_FINISH_ERROR)
            return format_error(j->custom_id, j->line_no, "generation_error",
                                j->ch[i].error ? j->ch[i].error : "");
    int32_t total = 0;
    for (int32_t i = 0; i < j->n_ch; i++) total += j->ch[i].n_gen;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "custom_id", j->custom_id);
    cJSON *r = cJSON_AddObjectToObject(o, "response");
    cJSON_AddStringToObject(r, "text", j->ch[0].text ? j->ch[0].text : "");
    cJSON_AddStringToObject(r, "finish_reason", reasons[j->ch[0].finish]);
    cJSON_AddNumberToObject(r, "prompt_tokens", j->n_prompt);
    cJSON_AddNumberToObject(r, "completion_tokens", total);
    if (j->n_ch > 1) {
        cJSON *cs = cJSON_AddArrayToObject(r, "choices");
        for (int32_t i = 0; i < j->n_ch; i++) {
            cJSON *c = cJSON_CreateObject();
            cJSON_AddNumberToObject(c, "index", i);
            cJSON_AddStringToObject(c, "text", j->ch[i].text ? j->ch[i].text : "");
            cJSON_AddStringToObject(c, "finish_reason", reasons[j->ch[i].finish]);
            cJSON_AddNumberToObject(c, "completion_tokens", j->ch[i].n_gen);
            if (!cJSON_AddItemToArray(cs, c)) cJSON_Delete(c);
        }
    }
    cJSON_AddNullToObject(o, "error");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* --------------------------------------------------------------------------------------------- */
/* the writer: completion order, or input order with --ordered                                   */
/* --------------------------------------------------------------------------------------------- */

typedef struct held_record {
    int64_t seq;  /* the record's place in input order */
    char   *json; /* cJSON_free */
} held_record;

typedef struct batch_writer {
    batch_output out;
    bool         ordered;
    int64_t      next_seq;       /* --ordered: the record to write next */
    held_record *held;           /* --ordered: finished records waiting for an earlier one */
    int32_t      n_held, cap_held;
} batch_writer;

static int write_held_in_order(batch_writer *w) {
    for (bool found = true; found;) {
        found = false;
        for (int32_t i = 0; i < w->n_held; i++) {
            if (w->held[i].seq != w->next_seq) continue;
            int rc = batch_output_write(&w->out, w->held[i].json);
            cJSON_free(w->held[i].json);
            w->held[i] = w->held[--w->n_held];
            if (rc != 0) return -1;
            w->next_seq++;
            found = true;
            break;
        }
    }
    return 0;
}

/* Hands record `seq` (owned; NULL = formatting ran out of memory) to the output. -1 when the
 * job must stop (the reason is on stderr). */
static int emit_record(batch_writer *w, int64_t seq, char *json) {
    if (!json) {
        fprintf(stderr, "\nllmrt batch: out of memory formatting a record\n");
        return -1;
    }
    if (!w->ordered) {
        int rc = batch_output_write(&w->out, json);
        cJSON_free(json);
        return rc;
    }
    if (w->n_held == w->cap_held) {
        int32_t      cap = w->cap_held ? w->cap_held * 2 : 64;
        held_record *h   = realloc(w->held, (size_t)cap * sizeof *h);
        if (!h) {
            cJSON_free(json);
            fprintf(stderr, "\nllmrt batch: out of memory holding records for --ordered\n");
            return -1;
        }
        w->held     = h;
        w->cap_held = cap;
    }
    w->held[w->n_held++] = (held_record){seq, json};
    return write_held_in_order(w);
}

static void writer_free(batch_writer *w) {
    for (int32_t i = 0; i < w->n_held; i++) cJSON_free(w->held[i].json);
    free(w->held);
    w->held   = NULL;
    w->n_held = 0;
}

/* --------------------------------------------------------------------------------------------- */
/* input                                                                                         */
/* --------------------------------------------------------------------------------------------- */

/* A line's request fields: batch_request.c (batch_parse_job). */

/* --------------------------------------------------------------------------------------------- */
/* the job                                                                                       */
/* --------------------------------------------------------------------------------------------- */

static void progress(int64_t done, int64_t total, int64_t tokens, double elapsed, bool final) {
    double rate = elapsed > 0 ? tokens / elapsed : 0, per = done > 0 ? elapsed / done : 0;
    int    width = 30, fill = total ? (int)(width * done / total) : width;
    fprintf(stderr, "\r[%.*s%*s] %lld/%lld  %.1f tok/s  ETA %.0fs ", fill,
            "##############################", width - fill, "", (long long)done, (long long)total,
            rate, per * (double)(total - done));
    if (final) fputc('\n', stderr);
}

/* The input, opened as a regular file, and not the output (the job would read back its own
 * records, or cut the input down as a torn output): compared by st_dev/st_ino, so another path
 * or a hard link to the same file is caught too. NULL with a message. */
static FILE *open_input(const char *in_path, const char *const *outputs, int n_outputs) {
    FILE *in = cli_fopen_regular(in_path);
    if (!in) {
        fprintf(stderr, "llmrt batch: --input %s\n", llmrt_last_error());
        return NULL;
    }
    struct stat in_st, out_st;
    if (fstat(fileno(in), &in_st) != 0) {
        fprintf(stderr, "llmrt batch: cannot stat %s: %s\n", in_path, strerror(errno));
        fclose(in);
        return NULL;
    }
    for (int i = 0; i < n_outputs; i++) {
        if (stat(outputs[i], &out_st) == 0 && out_st.st_dev == in_st.st_dev &&
            out_st.st_ino == in_st.st_ino) {
            fprintf(stderr, "llmrt batch: --input %s and the output %s are the same file\n",
                    in_path, outputs[i]);
            fclose(in);
            return NULL;
        }
    }
    return in;
}

/* Whether this process is a follower rank of a tensor-parallel group under mpirun: it only
 * serves its leader's steps (cli_load_model never returns there), so it must not open, lock or
 * repair the output its leader writes. */
static bool is_tp_follower(void) {
    int32_t rank = 0, size = 1;
    if (cli_tp <= 1 || llmrt_mpi_world_info(&rank, &size) != LLMRT_OK) return false;
    return size > 1 && rank % cli_tp != 0;
}

/* Appends `more` bytes of generated text to a choice; -1 when out of memory. */
static int append_text(struct batch_choice *chc, const char *text, size_t more) {
    size_t need; /* len + more + 1, overflow-checked (the tools do not include host/core) */
    if (__builtin_add_overflow(chc->len, more, &need) || __builtin_add_overflow(need, 1, &need) ||
        need > SIZE_MAX / 2)
        return -1;
    if (need > chc->cap) {
        char *t = realloc(chc->text, need * 2);
        if (!t) return -1;
        chc->text = t;
        chc->cap  = need * 2;
    }
    memcpy(chc->text + chc->len, text, more);
    chc->len += more;
    chc->text[chc->len] = 0;
    return 0;
}

int cli_batch(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    c.lora_modules_ok   = true;
    const char *in_path = NULL, *out_path = NULL;
    int32_t     max_conc = 0;
    bool        quiet    = false, data_parallel = false, ordered = false;
    enum { O_IN = 2000, O_OUT, O_CONC, O_QUIET, O_DP, O_ORDERED };
    static const struct option own[] = {
        {"input", required_argument, 0, O_IN},           {"output", required_argument, 0, O_OUT},
        {"max-concurrency", required_argument, 0, O_CONC}, {"quiet", no_argument, 0, O_QUIET},
        {"data-parallel", no_argument, 0, O_DP},         {"ordered", no_argument, 0, O_ORDERED},
        {"help", no_argument, 0, 'h'},
    };
    const struct option *opts = cli_options_with(own, sizeof own / sizeof own[0]);
    int                  o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "m:t:h", opts, NULL)) != -1) {
        int r = cli_common_parse(&c, o, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (o == O_IN) in_path = optarg;
        else if (o == O_OUT) out_path = optarg;
        else if (o == O_CONC) {
            if (cli_arg_int("--max-concurrency", optarg, 1, 1 << 20, &max_conc) < 0) return 2;
        }
        else if (o == O_QUIET) quiet = true;
        else if (o == O_DP) data_parallel = true;
        else if (o == O_ORDERED) ordered = true;
        else {
            FILE *f = o == 'h' ? stdout : stderr;
            fprintf(f, "usage: llmrt batch -m MODEL --input in.jsonl --output out.jsonl [options]\n"
                       "      --max-concurrency N  requests in flight (default: --max-seqs)\n"
                       "      --ordered            write the records in input order (finished ones\n"
                       "                           wait for earlier ones); a rerun appends the rest\n"
                       "                           in input order, so a job run with --ordered\n"
                       "                           throughout gives an input-ordered file\n"
                       "      --quiet              no progress bar\n"
                       "      --data-parallel      under mpirun -np R: deal the lines to the R / --tp\n"
                       "                           groups of ranks, each writing OUTPUT.dpG-of-N;\n"
                       "                           rank 0 merges them into OUTPUT at the end\n"
                       "  Output: one JSON line per input line, written with one write(2) as it\n"
                       "  finishes and fdatasync'd every %d records or %.0f s and at the end. A\n"
                       "  failed write (disk full, file too large) stops the job with exit 1; the\n"
                       "  file keeps every complete record. Rerun the same command to resume: the\n"
                       "  output is validated (a torn last line is removed, damage before it is\n"
                       "  refused naming the line) and custom_ids already in it are skipped.\n",
                    BATCH_SYNC_RECORDS, BATCH_SYNC_SECONDS);
            cli_common_usage(f);
            return o == 'h' ? 0 : 2;
        }
    }
    if (!in_path || !out_path) {
        fprintf(stderr, "llmrt batch: --input and --output are required\n");
        return 2;
    }
    if (ordered && data_parallel) {
        fprintf(stderr, "llmrt batch: --ordered and --data-parallel do not combine (the shards "
                        "are merged one after another, not in input order)\n");
        return 2;
    }
    if (max_conc <= 0) max_conc = c.engine.max_seqs;
    /* a file-size limit (RLIMIT_FSIZE) then fails the write with EFBIG, reported and stopped
     * like a full disk, instead of killing the job mid-record */
    signal(SIGXFSZ, SIG_IGN);
    batch_shards shards = {0};
    if (data_parallel && batch_shards_init(&shards, out_path, cli_tp) < 0) return 2;
    const char *write_path = shards.on ? shards.shard_path : out_path;
    const char *outputs[]  = {out_path, write_path};
    /* the input first: the scan below creates and may cut the output */
    FILE *in = open_input(in_path, outputs, 2);
    if (!in) return 1;
    /* done in an earlier run: in the output (merged), or in this group's shard; the file this
     * process appends to is locked against a second job before it is read */
    id_set       done_ids = {0};
    batch_writer w        = {.ordered = ordered, .out = {.fd = -1}};
    if (!is_tp_follower() && ((shards.on && batch_output_scan(out_path, &done_ids) < 0) ||
                              batch_output_open(&w.out, write_path, &done_ids) < 0)) {
        id_set_free(&done_ids);
        fclose(in);
        return 1;
    }
    cli_follower_barrier = shards.on; /* followers of a TP group join the end-of-job barrier */
    llmrt_model  *model  = cli_load_model(c.model_path, c.threads, c.load_format);
    llmrt_engine *engine = NULL;
    int           rc     = 1;
    char         *line   = NULL;
    id_set        seen   = {0}; /* custom_ids taken in this run (duplicates in the input) */
    if (!model || !(engine = cli_engine_create(&c, model, "llmrt batch"))) goto done;
    llmrt_sampling_params defaults = cli_common_sampling(&c, model);
    batch_models          models;
    batch_models_init(&models, &c);
    /* count lines for the progress bar */
    int64_t total = 0, skipped = 0, finished = 0, tokens = 0, line_no = 0, inflight = 0;
    int64_t next_seq = 0;
    size_t  cap      = 0;
    ssize_t got;
    for (int64_t ln = 1; (got = getline(&line, &cap, in)) >= 0; ln++)
        total += got > 1 && batch_shards_owns(&shards, ln);
    if (ferror(in)) {
        fprintf(stderr, "llmrt batch: reading %s: %s\n", in_path, strerror(errno));
        goto done;
    }
    rewind(in);
    double t0  = cli_now();
    bool   eof = false;
    /* --ordered holds finished records behind a slow earlier one: bound them as well as the
     * requests in flight, so memory stays bounded */
    int64_t max_outstanding = ordered ? 4 * (int64_t)max_conc : (int64_t)max_conc;
    while (!eof || inflight > 0) {
        while (!eof && inflight < max_conc && inflight + w.n_held < max_outstanding) {
            if ((got = getline(&line, &cap, in)) < 0) {
                if (ferror(in)) {
                    fprintf(stderr, "\nllmrt batch: reading %s: %s\n", in_path, strerror(errno));
                    goto done;
                }
                eof = true;
                break;
            }
            line_no++;
            while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
            if (got == 0 || !batch_shards_owns(&shards, line_no)) continue;
            job_line *j = calloc(1, sizeof *j);
            if (!j) {
                fprintf(stderr, "\nllmrt batch: out of memory at line %lld\n", (long long)line_no);
                goto done;
            }
            j->line_no = line_no;
            char msg[768];
            char jerr[512];
            if (cli_json_parse(line, (size_t)got, in_path, &j->root, jerr, sizeof jerr) != 0) {
                snprintf(msg, sizeof msg, "line %lld: %.600s", (long long)line_no, jerr);
            } else {
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(j->root, "custom_id");
                if (cJSON_IsString(id) && !(j->custom_id = strdup(id->valuestring))) {
                    fprintf(stderr, "\nllmrt batch: out of memory at line %lld\n", (long long)line_no);
                    batch_job_free(j);
                    goto done;
                }
                if (!cJSON_IsString(id)) snprintf(msg, sizeof msg, "no string \"custom_id\"");
            }
            /* done and seen records are keyed by custom_id, or by line when there is none */
            char *key = batch_record_key(j->custom_id, line_no);
            if (!key) {
                fprintf(stderr, "\nllmrt batch: out of memory at line %lld\n", (long long)line_no);
                batch_job_free(j);
                goto done;
            }
            if (id_set_has(&done_ids, key)) { /* done in an earlier run */
                skipped++;
                finished++;
                free(key);
                batch_job_free(j);
                continue;
            }
            if (id_set_has(&seen, key)) {
                fprintf(stderr, "\nllmrt batch: line %lld repeats custom_id \"%s\": skipped\n",
                        (long long)line_no, j->custom_id);
                finished++;
                free(key);
                batch_job_free(j);
                continue;
            }
            bool added = id_set_add(&seen, key);
            free(key);
            if (!added) {
                fprintf(stderr, "\nllmrt batch: out of memory at line %lld\n", (long long)line_no);
                batch_job_free(j);
                goto done;
            }
            j->seq = next_seq++;
            uint64_t     rid;
            llmrt_status st  = LLMRT_OK;
            char        *rec = NULL;
            if (!j->root || !j->custom_id ||
                !batch_parse_job(j, &defaults, &models, msg, sizeof msg)) {
                char where[800];
                if (j->root) snprintf(where, sizeof where, "line %lld: %s", (long long)line_no, msg);
                else snprintf(where, sizeof where, "%s", msg);
                if (!quiet) fprintf(stderr, "\nllmrt batch: %s %s\n", in_path, where);
                rec = format_error(j->custom_id, line_no, "invalid_request", where);
            } else if ((st = llmrt_engine_submit(engine, &j->prompt, &j->sp, &rid)) != LLMRT_OK) {
                rec = format_error(j->custom_id, line_no, llmrt_status_str(st), llmrt_last_error());
            } else {
                inflight++;
                continue;
            }
            int64_t seq = j->seq;
            finished++;
            batch_job_free(j);
            if (emit_record(&w, seq, rec) != 0) goto done;
        }
        if (inflight == 0) continue;
        const llmrt_output *outs;
        int32_t             n_out;
        if (llmrt_engine_step(engine, &outs, &n_out) != LLMRT_OK) {
            fprintf(stderr, "\nllmrt batch: %s\n", llmrt_last_error());
            goto done;
        }
        for (int32_t k = 0; k < n_out; k++) {
            const llmrt_output *out = &outs[k];
            job_line           *j   = out->user_data;
            struct batch_choice *chc = &j->ch[out->index >= 0 && out->index < j->n_ch ? out->index : 0];
            if (append_text(chc, out->text, out->text_len) != 0) {
                fprintf(stderr, "\nllmrt batch: out of memory for the text of line %lld\n",
                        (long long)j->line_no);
                goto done;
            }
            j->n_prompt     = out->n_prompt_tokens;
            chc->n_gen        = out->n_generated;
            tokens += out->n_tokens;
            if (out->finish != LLMRT_FINISH_NONE) {
                chc->finish = out->finish;
                if (out->finish == LLMRT_FINISH_ERROR && !chc->error)
                    chc->error = strdup(out->error_message ? out->error_message : "");
                if (++j->n_done < j->n_ch) continue; /* the line waits for all n sequences */
                char   *rec = format_result(j);
                int64_t seq = j->seq;
                finished++;
                inflight--;
                batch_job_free(j);
                if (emit_record(&w, seq, rec) != 0) goto done;
            }
        }
        if (!quiet) progress(finished, total, tokens, cli_now() - t0, false);
    }
    if (w.n_held > 0) { /* cannot happen: every seq is emitted once */
        fprintf(stderr, "llmrt batch: internal error: %d records held back\n", w.n_held);
        goto done;
    }
    if (batch_output_close(&w.out) != 0) goto done;
    if (!quiet) progress(finished, total, tokens, cli_now() - t0, true);
    fprintf(stderr, "llmrt batch: %lld lines, %lld already done, %lld tokens in %.1f s\n",
            (long long)total, (long long)skipped, (long long)tokens, cli_now() - t0);
    rc = 0;
done:
    /* on failure too: whatever complete records were written stay, synced */
    if (batch_output_close(&w.out) != 0) rc = 1;
    writer_free(&w);
    free(line);
    id_set_free(&seen);
    id_set_free(&done_ids);
    fclose(in);
    llmrt_engine_destroy(engine);
    llmrt_model_destroy(model); /* a TP group's followers return from serving it */
    if (rc == 0 && shards.on && batch_shards_merge(&shards, out_path) != 0) rc = 1;
    return rc;
}
