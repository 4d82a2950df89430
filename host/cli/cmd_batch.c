/* llmrt batch: a batch generation job. One request per input line (JSONL):
 *   {"custom_id": "a1", "prompt": "..."}                       raw text
 *   {"custom_id": "a2", "messages": [{"role": "user", ...}]}   chat
 *   {"custom_id": "a3", "prompt_token_ids": [1, 2, 3]}
 * with optional sampling fields (max_tokens, temperature, top_p, top_k, min_p, seed, stop,
 * stop_token_ids, presence_penalty, frequency_penalty, repetition_penalty, ignore_eos,
 * logprobs, n), at the top level or inside an OpenAI-batch style "body" object.
 * Output: one JSON line per input line, {"custom_id", "response": {...}, "error": null} or
 * {"custom_id", "response": null, "error": {"code", "message"}} for a bad line. With "n" > 1
 * the response also lists "choices": [{"index", "text", "finish_reason", "completion_tokens"}]
 * (one per sequence, like OpenAI's n); its "text" and "finish_reason" are choice 0's and its
 * "completion_tokens" the sum over the choices.
 * Robustness: every output line is written whole with one write(2) in append mode; on start the
 * output is read, a torn last line (a kill mid-write) is cut off, and custom_ids already present
 * are skipped, so an interrupted job resumes without loss or duplicates. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_json.h"
#include "cli_options.h"
#include "batch_shards.h"
#include "id_set.h"

#define MAX_STOPS 16

typedef struct job_line {
    char                 *custom_id;
    int64_t               line_no;
    cJSON                *root;
    llmrt_prompt          prompt;
    llmrt_chat_message   *msgs;
    int32_t              *ids;
    llmrt_sampling_params sp;
    const char           *stops[MAX_STOPS];
    int32_t              *stop_ids;
    /* output: one choice per sequence (llmrt_output.index) */
    struct batch_choice {
        char               *text;
        size_t              len, cap;
        int32_t             n_gen;
        llmrt_finish_reason finish;
        char               *error; /* the first error's message */
    } *ch;
    int32_t               n_ch, n_done;
    int32_t               n_prompt;
} job_line;

/* --------------------------------------------------------------------------------------------- */
/* resume: ids already in the output                                                             */
/* --------------------------------------------------------------------------------------------- */

/* Cuts a torn last line off and collects the custom_ids of the complete lines. */
static int scan_output(const char *path, id_set *done) {
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) return -1;
    struct stat st;
    fstat(fd, &st);
    char   *buf  = malloc((size_t)st.st_size + 1);
    ssize_t got  = st.st_size ? read(fd, buf, (size_t)st.st_size) : 0;
    if (got < 0) got = 0;
    buf[got]     = 0;
    off_t keep   = got;
    while (keep > 0 && buf[keep - 1] != '\n') keep--;
    if (keep != got) {
        fprintf(stderr, "llmrt batch: %s ends with a partial line (interrupted write): removed\n", path);
        if (ftruncate(fd, keep) != 0) {
            close(fd);
            free(buf);
            return -1;
        }
    }
    close(fd);
    for (char *line = buf, *end; line < buf + keep; line = end + 1) {
        end  = strchr(line, '\n');
        *end = 0;
        cJSON *root = cJSON_Parse(line);
        const cJSON *id = cJSON_GetObjectItem(root, "custom_id");
        if (cJSON_IsString(id)) id_set_add(done, id->valuestring);
        cJSON_Delete(root);
    }
    free(buf);
    return 0;
}

/* --------------------------------------------------------------------------------------------- */
/* output                                                                                        */
/* --------------------------------------------------------------------------------------------- */

static int write_line(int fd, cJSON *obj) {
    char *s = cJSON_PrintUnformatted(obj);
    if (!s) return -1;
    size_t n    = strlen(s);
    char  *line = malloc(n + 2);
    memcpy(line, s, n);
    line[n++] = '\n';
    /* one write of the whole line: a kill can leave it out but never half of it in a later
     * line's place (and a torn tail from a full disk is cut off on resume) */
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, line + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    free(line);
    cJSON_free(s);
    return off == n ? 0 : -1;
}

static int write_error(int fd, const char *custom_id, int64_t line_no, const char *code,
                       const char *message) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "custom_id", custom_id);
    cJSON_AddNumberToObject(o, "line", (double)line_no);
    cJSON_AddNullToObject(o, "response");
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    int rc = write_line(fd, o);
    cJSON_Delete(o);
    return rc;
}

static int write_result(int fd, const job_line *j) {
    static const char *reasons[] = {"none", "stop", "length", "abort", "error"};
    for (int32_t i = 0; i < j->n_ch; i++)
        if (j->ch[i].finish == LLMRT_FINISH_ERROR)
            return write_error(fd, j->custom_id, j->line_no, "generation_error",
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
            cJSON_AddItemToArray(cs, c);
        }
    }
    cJSON_AddNullToObject(o, "error");
    int rc = write_line(fd, o);
    cJSON_Delete(o);
    return rc;
}

/* --------------------------------------------------------------------------------------------- */
/* input                                                                                         */
/* --------------------------------------------------------------------------------------------- */

static void job_free(job_line *j) {
    free(j->custom_id);
    cJSON_Delete(j->root);
    free(j->msgs);
    free(j->ids);
    free(j->stop_ids);
    for (int32_t i = 0; i < j->n_ch; i++) {
        free(j->ch[i].text);
        free(j->ch[i].error);
    }
    free(j->ch);
    free(j);
}

/* Reads the request fields; returns NULL and fills msg for a bad line. */
static const char *parse_job(job_line *j, const llmrt_sampling_params *defaults, char *msg,
                             size_t msg_size) {
    const cJSON *root = j->root, *body = cJSON_GetObjectItem(root, "body");
    const cJSON *src  = cJSON_IsObject(body) ? body : root;
    j->sp             = *defaults;
    j->prompt         = (llmrt_prompt){.struct_size = sizeof j->prompt, .user_data = j};
    const cJSON *prompt = cJSON_GetObjectItem(src, "prompt");
    const cJSON *msgs   = cJSON_GetObjectItem(src, "messages");
    const cJSON *ids    = cJSON_GetObjectItem(src, "prompt_token_ids");
    if (cJSON_IsString(prompt)) {
        j->prompt.text     = prompt->valuestring;
        j->prompt.text_len = strlen(prompt->valuestring);
    } else if (cJSON_IsArray(msgs) && cJSON_GetArraySize(msgs) > 0) {
        int32_t n = cJSON_GetArraySize(msgs), k = 0;
        j->msgs   = calloc((size_t)n, sizeof *j->msgs);
        for (const cJSON *m = msgs->child; m; m = m->next, k++) {
            const cJSON *role = cJSON_GetObjectItem(m, "role"), *content = cJSON_GetObjectItem(m, "content");
            if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
                snprintf(msg, msg_size, "messages[%d] needs string \"role\" and \"content\"", k);
                return NULL;
            }
            j->msgs[k] = (llmrt_chat_message){role->valuestring, content->valuestring};
        }
        j->prompt.messages   = j->msgs;
        j->prompt.n_messages = n;
    } else if (cJSON_IsArray(ids) && cJSON_GetArraySize(ids) > 0) {
        int32_t n = cJSON_GetArraySize(ids), k = 0;
        j->ids    = malloc((size_t)n * sizeof *j->ids);
        for (const cJSON *v = ids->child; v; v = v->next) {
            if (!cJSON_IsNumber(v)) {
                snprintf(msg, msg_size, "prompt_token_ids must hold integers");
                return NULL;
            }
            j->ids[k++] = v->valueint;
        }
        j->prompt.tokens   = j->ids;
        j->prompt.n_tokens = n;
    } else {
        snprintf(msg, msg_size, "needs \"prompt\" (string), \"messages\" or \"prompt_token_ids\"");
        return NULL;
    }
    struct {
        const char *key;
        float      *f;
        int32_t    *i;
    } fields[] = {
        {"temperature", &j->sp.temperature, NULL},   {"top_p", &j->sp.top_p, NULL},
        {"min_p", &j->sp.min_p, NULL},               {"presence_penalty", &j->sp.presence_penalty, NULL},
        {"frequency_penalty", &j->sp.frequency_penalty, NULL},
        {"repetition_penalty", &j->sp.repetition_penalty, NULL},
        {"top_k", NULL, &j->sp.top_k},               {"max_tokens", NULL, &j->sp.max_tokens},
        {"min_tokens", NULL, &j->sp.min_tokens},     {"logprobs", NULL, &j->sp.n_logprobs},
        {"n", NULL, &j->sp.n},
    };
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        const cJSON *v = cJSON_GetObjectItem(src, fields[k].key);
        if (!v || cJSON_IsNull(v)) continue;
        if (!cJSON_IsNumber(v)) {
            snprintf(msg, msg_size, "\"%s\" must be a number", fields[k].key);
            return NULL;
        }
        if (fields[k].f) *fields[k].f = (float)v->valuedouble;
        else *fields[k].i = v->valuedouble > 2e9 ? 2000000000 : (int32_t)v->valuedouble;
    }
    const cJSON *seed = cJSON_GetObjectItem(src, "seed");
    if (cJSON_IsNumber(seed)) {
        j->sp.seed     = (uint64_t)seed->valuedouble;
        j->sp.has_seed = true;
    }
    const cJSON *ie = cJSON_GetObjectItem(src, "ignore_eos");
    if (cJSON_IsBool(ie)) j->sp.ignore_eos = cJSON_IsTrue(ie);
    const cJSON *stop = cJSON_GetObjectItem(src, "stop");
    j->sp.n_stop      = 0;
    if (cJSON_IsString(stop)) j->stops[j->sp.n_stop++] = stop->valuestring;
    else if (cJSON_IsArray(stop))
        for (const cJSON *s = stop->child; s && j->sp.n_stop < MAX_STOPS; s = s->next)
            if (cJSON_IsString(s)) j->stops[j->sp.n_stop++] = s->valuestring;
    j->sp.stop = j->sp.n_stop ? j->stops : NULL;
    const cJSON *sids = cJSON_GetObjectItem(src, "stop_token_ids");
    if (cJSON_IsArray(sids) && cJSON_GetArraySize(sids) > 0) {
        int32_t n = cJSON_GetArraySize(sids), k = 0;
        j->stop_ids = malloc((size_t)n * sizeof *j->stop_ids);
        for (const cJSON *v = sids->child; v; v = v->next) j->stop_ids[k++] = v->valueint;
        j->sp.stop_token_ids   = j->stop_ids;
        j->sp.n_stop_token_ids = n;
    }
    /* the engine checks n; the choices exist for any n it accepts */
    j->n_ch = j->sp.n >= 1 && j->sp.n <= 64 ? j->sp.n : 1;
    j->ch   = calloc((size_t)j->n_ch, sizeof *j->ch);
    if (!j->ch) {
        j->n_ch = 0;
        snprintf(msg, msg_size, "out of memory");
        return NULL;
    }
    return "ok";
}

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

int cli_batch(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    const char *in_path = NULL, *out_path = NULL;
    int32_t     max_conc = 0;
    bool        quiet    = false, data_parallel = false;
    enum { O_IN = 2000, O_OUT, O_CONC, O_QUIET, O_DP };
    static const struct option own[] = {
        {"input", required_argument, 0, O_IN},           {"output", required_argument, 0, O_OUT},
        {"max-concurrency", required_argument, 0, O_CONC}, {"quiet", no_argument, 0, O_QUIET},
        {"data-parallel", no_argument, 0, O_DP},
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
        else if (o == O_CONC) max_conc = atoi(optarg);
        else if (o == O_QUIET) quiet = true;
        else if (o == O_DP) data_parallel = true;
        else {
            FILE *f = o == 'h' ? stdout : stderr;
            fprintf(f, "usage: llmrt batch -m MODEL --input in.jsonl --output out.jsonl [options]\n"
                       "      --max-concurrency N  requests in flight (default: --max-seqs)\n"
                       "      --quiet              no progress bar\n"
                       "      --data-parallel      under mpirun -np R: deal the lines to the R / --tp\n"
                       "                           groups of ranks, each writing OUTPUT.dpG-of-N;\n"
                       "                           rank 0 merges them into OUTPUT at the end\n");
            cli_common_usage(f);
            return o == 'h' ? 0 : 2;
        }
    }
    if (!in_path || !out_path) {
        fprintf(stderr, "llmrt batch: --input and --output are required\n");
        return 2;
    }
    if (max_conc <= 0) max_conc = c.engine.max_seqs;
    batch_shards shards = {0};
    if (data_parallel && batch_shards_init(&shards, out_path, cli_tp) < 0) return 2;
    const char *write_path = shards.on ? shards.shard_path : out_path;
    /* done in an earlier run: in the output (merged), or in this group's shard */
    id_set done_ids = {0};
    if ((shards.on && scan_output(write_path, &done_ids) < 0) ||
        scan_output(out_path, &done_ids) < 0) {
        fprintf(stderr, "llmrt batch: cannot open %s: %s\n", write_path, strerror(errno));
        return 1;
    }
    cli_follower_barrier = shards.on; /* followers of a TP group join the end-of-job barrier */
    FILE *in = fopen(in_path, "r");
    if (!in) {
        fprintf(stderr, "llmrt batch: cannot open %s: %s\n", in_path, strerror(errno));
        return 1;
    }
    int fd = open(write_path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    llmrt_model  *model  = fd >= 0 ? cli_load_model(c.model_path, c.threads, c.load_format) : NULL;
    llmrt_engine *engine = NULL;
    int           rc     = 1;
    if (!model || llmrt_engine_create(model, &c.engine, &engine) != LLMRT_OK) {
        if (model) fprintf(stderr, "llmrt batch: %s\n", llmrt_last_error());
        goto done;
    }
    llmrt_sampling_params defaults = cli_common_sampling(&c, model);
    /* count lines for the progress bar */
    int64_t total = 0, skipped = 0, finished = 0, tokens = 0, line_no = 0, inflight = 0;
    char   *line  = NULL;
    size_t  cap   = 0;
    ssize_t got;
    for (int64_t ln = 1; (got = getline(&line, &cap, in)) >= 0; ln++)
        total += got > 1 && batch_shards_owns(&shards, ln);
    rewind(in);
    id_set seen = {0}; /* custom_ids taken in this run (duplicates in the input) */
    double t0   = cli_now();
    bool   eof  = false;
    while (!eof || inflight > 0) {
        while (!eof && inflight < max_conc) {
            if ((got = getline(&line, &cap, in)) < 0) {
                eof = true;
                break;
            }
            line_no++;
            while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
            if (got == 0 || !batch_shards_owns(&shards, line_no)) continue;
            job_line *j = calloc(1, sizeof *j);
            j->line_no  = line_no;
            char msg[768];
            char jerr[512];
            char fallback_id[32];
            snprintf(fallback_id, sizeof fallback_id, "line-%lld", (long long)line_no);
            if (cli_json_parse(line, (size_t)got, in_path, &j->root, jerr, sizeof jerr) != 0) {
                j->custom_id = strdup(fallback_id);
                snprintf(msg, sizeof msg, "line %lld: %.600s", (long long)line_no, jerr);
            } else {
                const cJSON *id = cJSON_GetObjectItem(j->root, "custom_id");
                j->custom_id    = strdup(cJSON_IsString(id) ? id->valuestring : fallback_id);
                if (!cJSON_IsString(id)) snprintf(msg, sizeof msg, "no string \"custom_id\"");
            }
            if (id_set_has(&done_ids, j->custom_id)) { /* done in an earlier run */
                skipped++;
                finished++;
                job_free(j);
                continue;
            }
            if (id_set_has(&seen, j->custom_id)) {
                fprintf(stderr, "\nllmrt batch: line %lld repeats custom_id \"%s\": skipped\n",
                        (long long)line_no, j->custom_id);
                finished++;
                job_free(j);
                continue;
            }
            id_set_add(&seen, j->custom_id);
            uint64_t     rid;
            llmrt_status st = LLMRT_OK;
            if (!j->root || !cJSON_IsString(cJSON_GetObjectItem(j->root, "custom_id")) ||
                !parse_job(j, &defaults, msg, sizeof msg)) {
                write_error(fd, j->custom_id, line_no, "invalid_request", msg);
                finished++;
                job_free(j);
            } else if ((st = llmrt_engine_submit(engine, &j->prompt, &j->sp, &rid)) != LLMRT_OK) {
                write_error(fd, j->custom_id, line_no, llmrt_status_str(st), llmrt_last_error());
                finished++;
                job_free(j);
            } else {
                inflight++;
            }
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
            if (chc->len + out->text_len + 1 > chc->cap) {
                chc->cap  = (chc->len + out->text_len + 1) * 2;
                chc->text = realloc(chc->text, chc->cap);
            }
            memcpy(chc->text + chc->len, out->text, out->text_len);
            chc->len += out->text_len;
            chc->text[chc->len] = 0;
            j->n_prompt     = out->n_prompt_tokens;
            chc->n_gen        = out->n_generated;
            tokens += out->n_tokens;
            if (out->finish != LLMRT_FINISH_NONE) {
                chc->finish = out->finish;
                if (out->finish == LLMRT_FINISH_ERROR && !chc->error)
                    chc->error = strdup(out->error_message);
                if (++j->n_done < j->n_ch) continue; /* the line waits for all n sequences */
                write_result(fd, j);
                finished++;
                inflight--;
                job_free(j);
            }
        }
        if (!quiet) progress(finished, total, tokens, cli_now() - t0, false);
    }
    if (!quiet) progress(finished, total, tokens, cli_now() - t0, true);
    fdatasync(fd);
    fprintf(stderr, "llmrt batch: %lld lines, %lld already done, %lld tokens in %.1f s\n",
            (long long)total, (long long)skipped, (long long)tokens, cli_now() - t0);
    rc = 0;
done:
    free(line);
    id_set_free(&seen);
    id_set_free(&done_ids);
    fclose(in);
    if (fd >= 0) close(fd);
    llmrt_engine_destroy(engine);
    llmrt_model_destroy(model); /* a TP group's followers return from serving it */
    if (rc == 0 && shards.on && batch_shards_merge(&shards, out_path) != 0) rc = 1;
    return rc;
}
