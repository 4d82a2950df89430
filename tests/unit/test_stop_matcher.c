/* Stop strings on streamed text: matches inside one delta and across 2 and 3 deltas, prefixes
 * that diverge and are released, overlapping candidates, several strings, a stop at the start,
 * flush, feeding after a stop, invalid input, and a randomized check against a naive reference
 * (earliest end, then longest) for many random splits of the same text. */
#include <stdlib.h>

#include "engine/stop_matcher.h"
#include "test_util.h"

typedef struct outcome {
    char    text[1024]; /* everything emitted, flush included */
    size_t  len;
    bool    stopped;
    int32_t which;
} outcome;

static llmrt_stop_matcher *make(const char *const *stops, int32_t n) {
    llmrt_error         err = {0};
    llmrt_stop_matcher *m   = NULL;
    CHECK_MSG(llmrt_stop_matcher_create(stops, n, &m, &err) == LLMRT_OK, "create: %s", err.msg);
    return m;
}

static void append(outcome *o, const char *s, size_t n) {
    CHECK(o->len + n < sizeof o->text);
    if (o->len + n >= sizeof o->text) return;
    memcpy(o->text + o->len, s, n);
    o->len += n;
    o->text[o->len] = 0;
}

/* Feeds the deltas then flushes; checks that no emitted prefix ever holds a stop string. */
static outcome run(const char *const *stops, int32_t n_stops, const char *const *deltas,
                   int n_deltas, const char **step_emits) {
    outcome             o = {.which = -1};
    llmrt_stop_matcher *m = make(stops, n_stops);
    if (!m) return o;
    llmrt_error err = {0};
    for (int i = 0; i < n_deltas; i++) {
        const char *e;
        size_t      n;
        CHECK(llmrt_stop_matcher_feed(m, deltas[i], strlen(deltas[i]), &e, &n, &o.stopped,
                                      &o.which, &err) == LLMRT_OK);
        if (step_emits)
            CHECK_MSG(n == strlen(step_emits[i]) && memcmp(e, step_emits[i], n) == 0,
                      "delta %d: emitted \"%.*s\", expected \"%s\"", i, (int)n, e, step_emits[i]);
        append(&o, e, n);
        for (int s = 0; s < n_stops; s++)
            CHECK_MSG(strstr(o.text, stops[s]) == NULL, "emitted \"%s\" holds \"%s\"", o.text,
                      stops[s]);
    }
    const char *e;
    size_t      n;
    llmrt_stop_matcher_flush(m, &e, &n);
    append(&o, e, n);
    CHECK(llmrt_stop_matcher_stopped(m) == o.stopped);
    llmrt_stop_matcher_destroy(m);
    return o;
}

#define EXPECT(o, str, stop, idx)                                                                  \
    do {                                                                                           \
        CHECK_MSG(strcmp((o).text, str) == 0, "emitted \"%s\", expected \"%s\"", (o).text, str);   \
        CHECK((o).stopped == (stop));                                                              \
        CHECK_MSG((o).which == (idx), "which %d, expected %d", (o).which, idx);                    \
    } while (0)

static void test_cases(void) {
    const char *stop1[] = {"STOP"};
    outcome     o;

    o = run(stop1, 1, (const char *[]){"Hello STOP world"}, 1, (const char *[]){"Hello "});
    EXPECT(o, "Hello ", true, 0);
    o = run(stop1, 1, (const char *[]){"Hello ST", "OP world"}, 2,
            (const char *[]){"Hello ", ""});
    EXPECT(o, "Hello ", true, 0);
    o = run(stop1, 1, (const char *[]){"Hello S", "TO", "P!"}, 3,
            (const char *[]){"Hello ", "", ""});
    EXPECT(o, "Hello ", true, 0);
    /* a held prefix that diverges is released, in order */
    o = run(stop1, 1, (const char *[]){"a S", "T", "x", "STO", "STOP"}, 5,
            (const char *[]){"a ", "", "STx", "", "STO"});
    EXPECT(o, "a STxSTO", true, 0);

    const char *help[] = {"Help"};
    o = run(help, 1, (const char *[]){"Hel", "lo"}, 2, (const char *[]){"", "Hello"});
    EXPECT(o, "Hello", false, -1);

    /* overlapping: the held suffix must restart inside a failed partial match */
    const char *abc[] = {"abc"};
    o = run(abc, 1, (const char *[]){"a", "a", "b", "a", "b", "c", "zz"}, 7,
            (const char *[]){"", "a", "", "ab", "", "", ""});
    EXPECT(o, "aab", true, 0);
    const char *abab[] = {"abab"};
    o = run(abab, 1, (const char *[]){"xaba", "bab"}, 2, (const char *[]){"x", ""});
    EXPECT(o, "x", true, 0);

    /* two candidates: the one that ends first wins; same end: the longer */
    const char *two[] = {"abcd", "bc"};
    o = run(two, 2, (const char *[]){"xab", "cd"}, 2, NULL);
    EXPECT(o, "xa", true, 1);
    const char *same_end[] = {"bcd", "abcd"};
    o = run(same_end, 2, (const char *[]){"xabcd"}, 1, NULL);
    EXPECT(o, "x", true, 1);
    o = run(same_end, 2, (const char *[]){"xa", "b", "cd"}, 3, NULL);
    EXPECT(o, "x", true, 1);

    /* several strings: the first to appear stops */
    const char *multi[] = {"\n\n", "END", "###"};
    o = run(multi, 3, (const char *[]){"line1\nline2", "E", "ND\n", "\n"}, 4, NULL);
    EXPECT(o, "line1\nline2", true, 1);
    o = run(multi, 3, (const char *[]){"a\n", "\nEND"}, 2, (const char *[]){"a", ""});
    EXPECT(o, "a", true, 0);

    /* at the very beginning */
    o = run(stop1, 1, (const char *[]){"STOP rest"}, 1, (const char *[]){""});
    EXPECT(o, "", true, 0);
    o = run(stop1, 1, (const char *[]){"S", "TOP"}, 2, (const char *[]){"", ""});
    EXPECT(o, "", true, 0);

    /* flush releases what was held */
    o = run(stop1, 1, (const char *[]){"abc ST"}, 1, (const char *[]){"abc "});
    EXPECT(o, "abc ST", false, -1);

    /* UTF-8 stop string split on a character boundary */
    const char *umlaut[] = {"\xc3\xbcnd"};
    o = run(umlaut, 1, (const char *[]){"Gr\xc3\xbc", "nde"}, 2, (const char *[]){"Gr", ""});
    EXPECT(o, "Gr", true, 0);

    /* no stop strings: pass-through; empty deltas are fine */
    o = run(NULL, 0, (const char *[]){"abc", "", "def"}, 3, (const char *[]){"abc", "", "def"});
    EXPECT(o, "abcdef", false, -1);
}

static void test_after_stop_and_errors(void) {
    const char         *stops[] = {"</s>", "x"};
    llmrt_stop_matcher *m       = make(stops, 2);
    llmrt_error         err     = {0};
    const char         *e;
    size_t              n;
    bool                stopped = false;
    int32_t             which   = -1;
    CHECK(llmrt_stop_matcher_feed(m, "ab</", 4, &e, &n, &stopped, &which, &err) == LLMRT_OK);
    CHECK(n == 2 && !stopped && which == -1);
    CHECK(llmrt_stop_matcher_feed(m, "s>cd", 4, &e, &n, &stopped, &which, &err) == LLMRT_OK);
    CHECK(n == 0 && stopped && which == 0);
    CHECK(llmrt_stop_matcher_feed(m, "more x", 6, &e, &n, &stopped, &which, &err) == LLMRT_OK);
    CHECK(n == 0 && stopped && which == 0);
    llmrt_stop_matcher_flush(m, &e, &n);
    CHECK(n == 0);
    CHECK_MSG(llmrt_stop_matcher_feed(m, NULL, 3, &e, &n, NULL, NULL, &err) == LLMRT_OK,
              "after a stop everything is ignored");
    llmrt_stop_matcher_destroy(m);
    m = make(stops, 2);
    CHECK(llmrt_stop_matcher_feed(m, NULL, 3, &e, &n, NULL, NULL, &err) == LLMRT_ERR_INVALID_ARG);
    llmrt_stop_matcher_destroy(m);
    llmrt_stop_matcher_destroy(NULL);

#define BAD_CREATE(list, count, needle)                                                            \
    do {                                                                                           \
        llmrt_stop_matcher *m_ = (llmrt_stop_matcher *)1;                                          \
        CHECK(llmrt_stop_matcher_create(list, count, &m_, &err) == LLMRT_ERR_INVALID_ARG);         \
        CHECK(m_ == NULL);                                                                         \
        CHECK_MSG(strstr(err.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", err.msg, needle); \
    } while (0)
    BAD_CREATE(((const char *[]){"ok", ""}), 2, "stop[1]");
    BAD_CREATE(((const char *[]){NULL}), 1, "stop[0]");
    BAD_CREATE(NULL, 1, "stop");
    BAD_CREATE(stops, -1, "stop");
    const char *many[17];
    for (int i = 0; i < 17; i++) many[i] = "s";
    BAD_CREATE(many, 17, "16");
    char long_s[LLMRT_STOP_MAX_BYTES + 2];
    memset(long_s, 'a', sizeof long_s - 1);
    long_s[sizeof long_s - 1] = 0;
    BAD_CREATE(((const char *[]){"a", long_s}), 2, "stop[1]");
    long_s[LLMRT_STOP_MAX_BYTES] = 0; /* exactly the limit is fine */
    m = make((const char *[]){long_s}, 1);
    llmrt_stop_matcher_destroy(m);
    m = make(many, 16);
    llmrt_stop_matcher_destroy(m);
}

/* Naive reference: the occurrence with the smallest end, then the longest. */
static void reference(const char *text, const char *const *stops, int n, outcome *o) {
    size_t best_end = (size_t)-1, best_len = 0;
    o->which        = -1;
    for (int i = 0; i < n; i++) {
        const char *p = strstr(text, stops[i]);
        if (!p) continue;
        size_t len = strlen(stops[i]), end = (size_t)(p - text) + len;
        if (end < best_end || (end == best_end && len > best_len))
            best_end = end, best_len = len, o->which = i;
    }
    o->stopped = o->which >= 0;
    o->len     = o->stopped ? best_end - best_len : strlen(text);
    memcpy(o->text, text, o->len);
    o->text[o->len] = 0;
}

static void test_random(void) {
    const char *stops[] = {"abc", "bca", "cc", "aab", "cbacba", "b"};
    uint64_t    st      = 42;
    int         bad     = 0;
    for (int iter = 0; iter < 3000; iter++) {
        /* "b" only in a few rounds: it stops almost at once */
        int                n_stops = iter % 50 == 0 ? 6 : 1 + iter % 5;
        const char *const *list    = stops;
        char text[64];
        st       = st * 6364136223846793005ull + 1442695040888963407ull;
        int len  = 1 + (int)((st >> 33) % 40);
        for (int i = 0; i < len; i++) {
            st      = st * 6364136223846793005ull + 1442695040888963407ull;
            text[i] = "abcx"[(st >> 33) % 4];
        }
        text[len] = 0;
        outcome want;
        reference(text, list, n_stops, &want);

        /* random cut points */
        char        pieces[64][64];
        const char *deltas[64];
        int         n_d = 0, pos = 0;
        while (pos < len) {
            st    = st * 6364136223846793005ull + 1442695040888963407ull;
            int k = 1 + (int)((st >> 33) % 6);
            if (k > len - pos) k = len - pos;
            memcpy(pieces[n_d], text + pos, (size_t)k);
            pieces[n_d][k] = 0;
            deltas[n_d]    = pieces[n_d];
            n_d++, pos += k;
        }
        outcome got = run(list, n_stops, deltas, n_d, NULL);
        if (strcmp(got.text, want.text) != 0 || got.stopped != want.stopped ||
            got.which != want.which) {
            if (bad++ < 5)
                fprintf(stderr, "text \"%s\": got \"%s\" (%d), want \"%s\" (%d)\n", text,
                        got.text, got.which, want.text, want.which);
        }
    }
    CHECK_MSG(bad == 0, "%d random cases differ from the reference", bad);
}

int main(void) {
    test_cases();
    test_after_stop_and_errors();
    test_random();
    return test_summary("test_stop_matcher");
}
