/* Toy sequence data sets: strict loader, padded batches, resumable sampler, task generators. */
#include "minienc/data.h"

#include "file.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------- */
/* Loader                                                                                          */

typedef struct {
    const char *path; /* the name in messages */
    size_t line;
    me_error *err;
    me_dataset *ds;
} loader;

/* "PATH:LINE:COL: message" with ME_ERR_DATA. */
static me_status bad(const loader *L, size_t col, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static me_status bad(const loader *L, size_t col, const char *fmt, ...) {
    char msg[ME_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return me_error_set(L->err, ME_ERR_DATA, "%s:%zu:%zu: %s", L->path, L->line, col, msg);
}

/* Grows *p (elements of `elem` bytes, capacity *cap) to hold at least `need` elements. */
static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 256;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) return 0;
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

/* Describes the byte c for a message: "'x'", "byte 0xff" or "carriage return ...". */
static const char *describe_byte(unsigned char c, char *buf, size_t cap) {
    if (c == '\r')
        snprintf(buf, cap, "carriage return (0x0d)");
    else if (c >= 0x21 && c < 0x7f)
        snprintf(buf, cap, "'%c'", c);
    else
        snprintf(buf, cap, "byte 0x%02x", c);
    return buf;
}

/* Parses the tokens of one field starting at *p: decimal integers separated by single spaces, ending
 * at a tab or the end of the line (where *p is left). Appends them to `out` (capacity *cap, starting
 * at index *count). Values must be < limit; at most max_count tokens (more is refused by
 * too_many()). Returns ME_OK or the refusal. */
typedef struct {
    const char *what;       /* "input token" or "target" */
    const char *a_what;     /* the same with its article */
    const char *limit_name; /* "vocab_size" or "n_classes" */
    int limit;
    size_t max_count;
    const char *too_many_fmt; /* printf with one %zu: max_count */
} field_rules;

static me_status parse_field(loader *L, const char *b, size_t len, size_t *p, const field_rules *R,
                             int32_t **out, size_t *cap, size_t base, size_t *count) {
    size_t q = *p;
    size_t n = 0;
    char desc[80];
    if (q == len || b[q] == '\t') {
        *count = 0;
        return ME_OK;
    }
    for (;;) {
        /* q is where a token must start */
        unsigned char c = (unsigned char)b[q];
        if (c == ' ')
            return bad(L, q + 1, n == 0 ? "unexpected space at the start of a field; expected %s"
                                        : "two spaces in a row; expected exactly one space between tokens%.0s",
                       R->a_what);
        if (c == '+' || c == '-')
            return bad(L, q + 1, "sign '%c' before a number; expected a non-negative decimal integer without a sign",
                       c);
        if (c < '0' || c > '9')
            return bad(L, q + 1, "unexpected %s; expected %s (a non-negative decimal integer)",
                       describe_byte(c, desc, sizeof desc), R->a_what);
        if (n == R->max_count) return bad(L, q + 1, R->too_many_fmt, R->max_count);
        size_t start = q;
        uint64_t v = 0;
        while (q < len && b[q] >= '0' && b[q] <= '9') {
            if (v <= INT32_MAX) v = v * 10 + (uint64_t)(b[q] - '0');
            q++;
        }
        int digits = (int)(q - start);
        if (v > INT32_MAX)
            return bad(L, start + 1, "number %.*s%s does not fit in 32 bits; expected %s below %s=%d",
                       digits > 24 ? 24 : digits, b + start, digits > 24 ? "..." : "", R->a_what, R->limit_name,
                       R->limit);
        if (v >= (uint64_t)R->limit)
            return bad(L, start + 1, "%s %" PRIu64 " is out of range; expected 0 <= %s < %s=%d", R->what, v,
                       R->what, R->limit_name, R->limit);
        if (!grow((void **)out, cap, base + n + 1, sizeof **out))
            return me_error_set(L->err, ME_ERR_NOMEM, "%s:%zu: out of memory while loading", L->path, L->line);
        (*out)[base + n] = (int32_t)v;
        n++;
        if (q == len || b[q] == '\t') break;
        if (b[q] != ' ')
            return bad(L, q + 1, "unexpected %s after a number; expected a space, a tab or the end of the line",
                       describe_byte((unsigned char)b[q], desc, sizeof desc));
        if (q + 1 == len || b[q + 1] == '\t')
            return bad(L, q + 1, "trailing space after the last %s; expected %s after each space", R->what,
                       R->a_what);
        q++;
    }
    *p = q;
    *count = n;
    return ME_OK;
}

/* Checks one non-blank, non-comment line and appends its example. */
static me_status parse_line(loader *L, const char *b, size_t len) {
    me_dataset *ds = L->ds;
    size_t e = ds->n;
    size_t old_cap = ds->cap_examples;
    if (!grow((void **)&ds->offsets, &ds->cap_examples, e + 2, sizeof *ds->offsets)) goto nomem;
    if (ds->cap_examples != old_cap) { /* the other per-example arrays share cap_examples */
        size_t *o = realloc(ds->target_offsets, ds->cap_examples * sizeof *o);
        if (!o) goto nomem;
        ds->target_offsets = o;
        size_t *ln = realloc(ds->lines, ds->cap_examples * sizeof *ln);
        if (!ln) goto nomem;
        ds->lines = ln;
    }
    size_t tok0 = ds->offsets[e], tgt0 = ds->target_offsets[e];
    int optional = (ds->flags & ME_DATA_TARGETS_OPTIONAL) != 0;

    if (len == 0) return bad(L, 1, "no input tokens; expected at least one input token");
    if (b[0] == '\t') return bad(L, 1, "no input tokens before the tab; expected at least one input token");
    field_rules in = {"input token", "an input token", "vocab_size", ds->vocab_size, (size_t)ds->max_len,
                      "more than max_len=%zu input tokens; expected at most max_len input tokens"};
    size_t p = 0, n_in = 0, n_tg = 0;
    me_status st = parse_field(L, b, len, &p, &in, &ds->tokens, &ds->cap_tokens, tok0, &n_in);
    if (st != ME_OK) return st;
    if (p == len && !optional)
        return bad(L, len + 1,
                   "missing tab after the input tokens; expected input tokens, one TAB, then target tokens");
    if (p < len) {
        p++; /* the tab */
        field_rules tg = {"target", "a target", "n_classes", ds->n_classes, ds->task == ME_TASK_TAG ? n_in : 1,
                          ds->task == ME_TASK_TAG
                              ? "more targets than the %zu input tokens; task tag expects one target per input token"
                              : "more than %zu target; task classify expects exactly one class label"};
        st = parse_field(L, b, len, &p, &tg, &ds->targets, &ds->cap_targets, tgt0, &n_tg);
        if (st != ME_OK) return st;
        if (p < len) return bad(L, p + 1, "a second tab; expected exactly one tab between inputs and targets");
        if (n_tg == 0)
            return bad(L, len + 1, "no targets after the tab; expected %s",
                       ds->task == ME_TASK_TAG ? "one target per input token" : "one class label");
        if (ds->task == ME_TASK_TAG && n_tg < n_in)
            return bad(L, len + 1,
                       "only %zu target%s for %zu input tokens; task tag expects one target per input token", n_tg,
                       n_tg == 1 ? "" : "s", n_in);
    }

    ds->offsets[e + 1] = tok0 + n_in;
    ds->target_offsets[e + 1] = tgt0 + n_tg;
    ds->lines[e] = L->line;
    ds->n = e + 1;
    if ((int)n_in > ds->max_len_seen) ds->max_len_seen = (int)n_in;
    return ME_OK;
nomem:
    return me_error_set(L->err, ME_ERR_NOMEM, "%s:%zu: out of memory while loading", L->path, L->line);
}

/* Reads one line (without its '\n') into buf of capacity cap. Returns 0 at the end of the file,
 * 1 for a line, 2 when the line does not fit (len is then cap). */
static int read_line(FILE *f, char *buf, size_t cap, size_t *len) {
    size_t n = 0;
    int c;
    while ((c = getc(f)) != EOF) {
        if (c == '\n') {
            *len = n;
            return 1;
        }
        if (n == cap) {
            *len = n;
            return 2;
        }
        buf[n++] = (char)c;
    }
    *len = n;
    return n > 0 ? 1 : 0;
}

me_status me_dataset_init(me_dataset *ds, me_task task, int vocab_size, int n_classes, int max_len, unsigned flags,
                          const char *name, me_error *err) {
    memset(ds, 0, sizeof *ds);
    if (task != ME_TASK_TAG && task != ME_TASK_CLASSIFY)
        return me_error_set(err, ME_ERR_CONFIG, "%s: unknown task %d; expected tag or classify", name, (int)task);
    if (vocab_size < 1 || n_classes < 1 || max_len < 1)
        return me_error_set(err, ME_ERR_CONFIG,
                            "%s: vocab_size=%d n_classes=%d max_len=%d; expected all of them >= 1", name,
                            vocab_size, n_classes, max_len);
    ds->task = task;
    ds->vocab_size = vocab_size;
    ds->n_classes = n_classes;
    ds->max_len = max_len;
    ds->flags = flags;
    if (!grow((void **)&ds->offsets, &ds->cap_examples, 2, sizeof *ds->offsets) ||
        !(ds->target_offsets = calloc(ds->cap_examples, sizeof *ds->target_offsets)) ||
        !(ds->lines = calloc(ds->cap_examples, sizeof *ds->lines))) {
        me_dataset_free(ds);
        return me_error_set(err, ME_ERR_NOMEM, "%s: out of memory", name);
    }
    ds->offsets[0] = 0;
    ds->target_offsets[0] = 0;
    return ME_OK;
}

me_status me_dataset_add_line(me_dataset *ds, const char *text, size_t len, const char *name, size_t line,
                              me_error *err) {
    loader L = {name, line, err, ds};
    if (len > ME_DATA_LINE_MAX)
        return bad(&L, (size_t)ME_DATA_LINE_MAX + 1, "line longer than %d bytes; expected shorter lines",
                   ME_DATA_LINE_MAX);
    const char *nul = memchr(text, '\0', len);
    if (nul) return bad(&L, (size_t)(nul - text) + 1, "NUL byte; expected text");
    return parse_line(&L, text, len);
}

me_status me_dataset_read(me_dataset *ds, FILE *f, const char *name, me_task task, int vocab_size, int n_classes,
                          int max_len, unsigned flags, me_error *err) {
    me_status st = me_dataset_init(ds, task, vocab_size, n_classes, max_len, flags, name, err);
    if (st != ME_OK) return st;
    loader L = {name, 0, err, ds};
    /* one spare byte so that a line of exactly ME_DATA_LINE_MAX bytes may still end in '\r' */
    size_t cap = (size_t)ME_DATA_LINE_MAX + 1;
    char *buf = malloc(cap);
    if (!buf) {
        st = me_error_set(err, ME_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    for (;;) {
        size_t len;
        int r = read_line(f, buf, cap, &len);
        if (r == 0) break;
        L.line++;
        if (r == 1 && len > 0 && buf[len - 1] == '\r') len--;
        if (r == 2) len = cap;
        const char *nul = memchr(buf, '\0', len); /* refused even in a comment: the file is not text */
        if (nul) {
            st = bad(&L, (size_t)(nul - buf) + 1, "NUL byte; expected text");
            goto done;
        }
        if (len == 0 || buf[0] == '#') continue;
        st = me_dataset_add_line(ds, buf, len, name, L.line, err);
        if (st != ME_OK) goto done;
    }
    if (ferror(f)) {
        st = me_error_set(err, ME_ERR_IO, "%s:%zu: read error: %s", name, L.line + 1, strerror(errno));
        goto done;
    }
    if (ds->n == 0) {
        L.line++;
        st = bad(&L, 1, "no examples in the file; expected at least one line 'input tokens%s'",
                 flags & ME_DATA_TARGETS_OPTIONAL ? "[<TAB>target tokens]" : "<TAB>target tokens");
        goto done;
    }
done:
    free(buf);
    if (st != ME_OK) me_dataset_free(ds);
    return st;
}

me_status me_dataset_load(me_dataset *ds, const char *path, me_task task, int vocab_size, int n_classes,
                          int max_len, me_error *err) {
    return me_dataset_load_flags(ds, path, task, vocab_size, n_classes, max_len, 0, err);
}

me_status me_dataset_load_flags(me_dataset *ds, const char *path, me_task task, int vocab_size, int n_classes,
                                int max_len, unsigned flags, me_error *err) {
    memset(ds, 0, sizeof *ds);
    if (task != ME_TASK_TAG && task != ME_TASK_CLASSIFY)
        return me_error_set(err, ME_ERR_CONFIG, "%s: unknown task %d; expected tag or classify", path, (int)task);
    if (vocab_size < 1 || n_classes < 1 || max_len < 1)
        return me_error_set(err, ME_ERR_CONFIG,
                            "%s: vocab_size=%d n_classes=%d max_len=%d; expected all of them >= 1", path,
                            vocab_size, n_classes, max_len);
    FILE *f = fopen(path, "rb");
    if (!f) return me_error_set(err, ME_ERR_NOFILE, "%s: cannot open data file: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return me_error_set(err, ME_ERR_NOFILE, "%s: is a directory, expected a data file", path);
    }
    me_status st = me_dataset_read(ds, f, path, task, vocab_size, n_classes, max_len, flags, err);
    fclose(f);
    return st;
}

void me_dataset_free(me_dataset *ds) {
    free(ds->tokens);
    free(ds->targets);
    free(ds->offsets);
    free(ds->target_offsets);
    free(ds->lines);
    memset(ds, 0, sizeof *ds);
}

/* ---------------------------------------------------------------------------------------------- */
/* Batching                                                                                        */

size_t me_dataset_batch(const me_dataset *ds, const size_t *idx, size_t B, int32_t *tokens, uint8_t *pad_mask,
                        int32_t *targets) {
    size_t S = 0;
    for (size_t b = 0; b < B; b++) {
        assert(idx[b] < ds->n);
        size_t l = me_dataset_len(ds, idx[b]);
        if (l > S) S = l;
    }
    for (size_t b = 0; b < B; b++) {
        size_t i = idx[b], l = me_dataset_len(ds, i);
        const int32_t *x = ds->tokens + ds->offsets[i];
        int32_t *trow = tokens + b * S;     /* [S] */
        uint8_t *mrow = pad_mask + b * S;   /* [S] */
        for (size_t t = 0; t < S; t++) {
            trow[t] = t < l ? x[t] : 0;
            mrow[t] = t < l ? 0 : 1;
        }
        int has = me_dataset_has_targets(ds, i);
        const int32_t *y = has ? ds->targets + ds->target_offsets[i] : NULL;
        if (ds->task == ME_TASK_TAG) {
            int32_t *yrow = targets + b * S; /* [S] */
            for (size_t t = 0; t < S; t++) yrow[t] = has && t < l ? y[t] : -1;
        } else {
            targets[b] = has ? y[0] : -1;
        }
    }
    return S;
}

size_t me_dataset_count_targets(const me_dataset *ds, const size_t *idx, size_t B) {
    if (ds->task != ME_TASK_TAG) return B;
    size_t n = 0;
    for (size_t b = 0; b < B; b++) n += me_dataset_len(ds, idx[b]);
    return n;
}

/* ---------------------------------------------------------------------------------------------- */
/* Sampler                                                                                         */

/* Regenerates perm for s->epoch: a Fisher-Yates shuffle driven by an rng keyed on (seed, epoch). */
static void sampler_shuffle(me_sampler *s) {
    me_rng_seed(&s->rng, me_rng_mix64(s->seed ^ me_rng_mix64(s->epoch + ME_RNG_GAMMA)));
    for (size_t i = 0; i < s->n; i++) s->perm[i] = i;
    for (size_t i = s->n; i > 1; i--) {
        size_t j = (size_t)me_rng_below(&s->rng, (uint64_t)i);
        size_t t = s->perm[i - 1];
        s->perm[i - 1] = s->perm[j];
        s->perm[j] = t;
    }
}

me_status me_sampler_init(me_sampler *s, size_t n, uint64_t seed, me_error *err) {
    memset(s, 0, sizeof *s);
    if (n == 0) return me_error_set(err, ME_ERR_DATA, "sampler: no examples; expected at least one");
    s->perm = malloc(n * sizeof *s->perm);
    if (!s->perm) return me_error_set(err, ME_ERR_NOMEM, "sampler: out of memory for %zu indices", n);
    s->n = n;
    s->seed = seed;
    sampler_shuffle(s);
    return ME_OK;
}

void me_sampler_next_batch(me_sampler *s, size_t *idx, size_t B) {
    for (size_t b = 0; b < B; b++) {
        if (s->pos == s->n) {
            s->epoch++;
            s->pos = 0;
            sampler_shuffle(s);
        }
        idx[b] = s->perm[s->pos++];
    }
}

void me_sampler_get_state(const me_sampler *s, uint64_t *seed, uint64_t *epoch, uint64_t *pos) {
    *seed = s->seed;
    *epoch = s->epoch;
    *pos = (uint64_t)s->pos;
}

me_status me_sampler_set_state(me_sampler *s, uint64_t seed, uint64_t epoch, uint64_t pos, me_error *err) {
    if (pos > (uint64_t)s->n)
        return me_error_set(err, ME_ERR_DATA,
                            "sampler state: position %" PRIu64 " is beyond the %zu examples; expected a state "
                            "saved for this data set",
                            pos, s->n);
    s->seed = seed;
    s->epoch = epoch;
    s->pos = (size_t)pos;
    sampler_shuffle(s);
    return ME_OK;
}

void me_sampler_free(me_sampler *s) {
    free(s->perm);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------------------------------------- */
/* Generators                                                                                      */

typedef enum { GEN_REVERSE, GEN_SORT, GEN_HISTOGRAM, GEN_COPY, GEN_PARITY, GEN_MAJORITY } gen_task;

static const struct {
    const char *name;
    gen_task id;
    me_task kind;
    int vocab; /* the default vocabulary, as data/README.md describes the task */
} gen_tasks[] = {
    {"reverse", GEN_REVERSE, ME_TASK_TAG, 8},     {"sort", GEN_SORT, ME_TASK_TAG, 8},
    {"histogram", GEN_HISTOGRAM, ME_TASK_TAG, 8}, {"copy", GEN_COPY, ME_TASK_TAG, 8},
    {"parity", GEN_PARITY, ME_TASK_CLASSIFY, 2},  {"majority", GEN_MAJORITY, ME_TASK_CLASSIFY, 8},
};

static int find_task(const char *task) {
    for (size_t i = 0; i < sizeof gen_tasks / sizeof gen_tasks[0]; i++)
        if (task && strcmp(task, gen_tasks[i].name) == 0) return (int)i;
    return -1;
}

me_status me_data_task_info(const char *task, int vocab, int max_len, int *vocab_size, int *n_classes,
                            me_task *kind, me_error *err) {
    int t = find_task(task);
    if (t < 0)
        return me_error_set(err, ME_ERR_CONFIG, "task '%s': unknown; expected one of " ME_DATA_TASK_NAMES,
                            task ? task : "(null)");
    if (vocab < 2)
        return me_error_set(err, ME_ERR_CONFIG, "task %s: vocab=%d; expected vocab >= 2", task, vocab);
    if (max_len < 1 || max_len > ME_DATA_GEN_MAX_LEN)
        return me_error_set(err, ME_ERR_CONFIG, "task %s: max_len=%d; expected 1 <= max_len <= %d", task, max_len,
                            ME_DATA_GEN_MAX_LEN);
    int nc = vocab;
    if (gen_tasks[t].id == GEN_HISTOGRAM) nc = max_len + 1;
    if (gen_tasks[t].id == GEN_PARITY) nc = 2;
    if (vocab_size) *vocab_size = vocab;
    if (n_classes) *n_classes = nc;
    if (kind) *kind = gen_tasks[t].kind;
    return ME_OK;
}

int me_data_default_vocab(const char *task) {
    int t = find_task(task);
    return t < 0 ? 8 : gen_tasks[t].vocab;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Number of times x[j] occurs in x[0..l). Quadratic, which is fine for toy lengths and keeps the
 * memory independent of vocab. */
static int32_t count_of(const int32_t *x, size_t l, size_t j) {
    int32_t c = 0;
    for (size_t k = 0; k < l; k++) c += x[k] == x[j];
    return c;
}

/* Fills y (length l for tag, 1 for classify) with the task's answer for x[l]. */
static void gen_targets(gen_task id, const int32_t *x, size_t l, int32_t *y) {
    switch (id) {
    case GEN_REVERSE:
        for (size_t j = 0; j < l; j++) y[j] = x[l - 1 - j];
        break;
    case GEN_SORT:
        memcpy(y, x, l * sizeof *y);
        qsort(y, l, sizeof *y, cmp_i32);
        break;
    case GEN_HISTOGRAM:
        for (size_t j = 0; j < l; j++) y[j] = count_of(x, l, j);
        break;
    case GEN_COPY:
        memcpy(y, x, l * sizeof *y);
        break;
    case GEN_PARITY: {
        int32_t ones = 0;
        for (size_t j = 0; j < l; j++) ones += x[j] == 1;
        y[0] = ones % 2;
        break;
    }
    case GEN_MAJORITY: {
        int32_t best = x[0], best_count = 0;
        for (size_t j = 0; j < l; j++) {
            int32_t c = count_of(x, l, j);
            if (c > best_count || (c == best_count && x[j] < best)) {
                best = x[j];
                best_count = c;
            }
        }
        y[0] = best;
        break;
    }
    }
}

static int write_tokens(FILE *out, const int32_t *v, size_t n, char end) {
    for (size_t j = 0; j < n; j++)
        if (fprintf(out, "%" PRId32 "%c", v[j], j + 1 < n ? ' ' : end) < 0) return 0;
    return 1;
}

me_status me_data_generate(FILE *out, const char *task, size_t n, int min_len, int max_len, int vocab,
                           uint64_t seed, me_error *err) {
    int vs, nc;
    me_task kind;
    me_status st = me_data_task_info(task, vocab, max_len, &vs, &nc, &kind, err);
    if (st != ME_OK) return st;
    if (n < 1) return me_error_set(err, ME_ERR_CONFIG, "generate %s: n=%zu; expected n >= 1", task, n);
    if (min_len < 1 || min_len > max_len)
        return me_error_set(err, ME_ERR_CONFIG, "generate %s: min_len=%d max_len=%d; expected 1 <= min_len <= max_len",
                            task, min_len, max_len);
    gen_task id = gen_tasks[find_task(task)].id;
    int32_t *x = malloc((size_t)max_len * sizeof *x); /* [max_len] inputs */
    int32_t *y = malloc((size_t)max_len * sizeof *y); /* [max_len] targets */
    if (!x || !y) {
        free(x);
        free(y);
        return me_error_set(err, ME_ERR_NOMEM, "generate %s: out of memory", task);
    }
    me_rng rng;
    me_rng_seed(&rng, seed);
    int ok = fprintf(out,
                     "# minienc data: task=%s n=%zu min_len=%d max_len=%d vocab=%d seed=%" PRIu64
                     " vocab_size=%d n_classes=%d kind=%s\n",
                     task, n, min_len, max_len, vocab, seed, vs, nc, kind == ME_TASK_TAG ? "tag" : "classify") >= 0;
    for (size_t i = 0; ok && i < n; i++) {
        size_t l = (size_t)min_len + (size_t)me_rng_below(&rng, (uint64_t)(max_len - min_len + 1));
        for (size_t j = 0; j < l; j++) x[j] = (int32_t)me_rng_below(&rng, (uint64_t)vocab);
        gen_targets(id, x, l, y);
        ok = write_tokens(out, x, l, '\t') && write_tokens(out, y, kind == ME_TASK_TAG ? l : 1, '\n');
    }
    free(x);
    free(y);
    if (!ok || fflush(out) != 0 || ferror(out))
        return me_error_set(err, ME_ERR_IO, "generate %s: write failed: %s", task, strerror(errno));
    return ME_OK;
}

me_status me_data_generate_file(const char *path, const char *task, size_t n, int min_len, int max_len,
                                int vocab, uint64_t seed, me_error *err) {
    /* generate in memory, then the one atomic writer (temp file, fsync, rename, stale temp cleanup) */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return me_error_set(err, ME_ERR_NOMEM, "%s: out of memory", path);
    me_status st = me_data_generate(f, task, n, min_len, max_len, vocab, seed, err);
    if (fclose(f) != 0 && st == ME_OK) st = me_error_set(err, ME_ERR_NOMEM, "%s: out of memory", path);
    if (st == ME_OK) st = me_file_write_atomic(path, buf, len, err);
    else if (err && st != ME_ERR_CONFIG) me_error_prefix(err, "%s", path);
    free(buf);
    return st;
}

/* ---- a train/validation split with no input in both --------------------------------------------- */

/* The validation inputs, for membership tests: tokens back to back, an open-addressing table of
 * example indices keyed by a hash of the tokens. */
typedef struct {
    int32_t *tok;   /* [n * max_len] example i at i * max_len */
    size_t *len;    /* [n] */
    size_t *slot;   /* [cap] example index + 1, 0 = empty */
    size_t n, cap, distinct;
    int max_len;
} seen_set;

static uint64_t hash_tokens(const int32_t *x, size_t l) {
    uint64_t h = me_rng_mix64((uint64_t)l);
    for (size_t j = 0; j < l; j++) h = me_rng_mix64(h ^ (uint64_t)(uint32_t)x[j]);
    return h;
}

/* 1 if x[l] is in the set; *at gets its slot or the empty slot where it would go. */
static int seen_find(const seen_set *S, const int32_t *x, size_t l, size_t *at) {
    size_t i = (size_t)hash_tokens(x, l) & (S->cap - 1);
    while (S->slot[i]) {
        size_t e = S->slot[i] - 1;
        if (S->len[e] == l && memcmp(S->tok + e * (size_t)S->max_len, x, l * sizeof *x) == 0) {
            *at = i;
            return 1;
        }
        i = (i + 1) & (S->cap - 1);
    }
    *at = i;
    return 0;
}

/* Number of distinct inputs of lengths min_len..max_len over vocab tokens, capped at cap. */
static uint64_t input_space(int min_len, int max_len, int vocab, uint64_t cap) {
    uint64_t total = 0, p = 1;
    for (int l = 1; l <= max_len; l++) {
        p = p > cap / (uint64_t)vocab ? cap : p * (uint64_t)vocab;
        if (l >= min_len) total = total > cap - p ? cap : total + p;
    }
    return total;
}

/* The comment line opening each file of a split. */
static int split_header(FILE *out, const char *task, const char *part, size_t n_train, size_t n_valid, int min_len,
                        int max_len, int vocab, uint64_t seed, int vs, int nc, me_task kind) {
    return fprintf(out,
                   "# minienc data: task=%s part=%s n_train=%zu n_valid=%zu min_len=%d max_len=%d vocab=%d "
                   "seed=%" PRIu64 " vocab_size=%d n_classes=%d kind=%s\n",
                   task, part, n_train, n_valid, min_len, max_len, vocab, seed, vs, nc,
                   kind == ME_TASK_TAG ? "tag" : "classify") >= 0;
}

me_status me_data_generate_split(FILE *train, FILE *valid, const char *task, size_t n_train, size_t n_valid,
                                 int min_len, int max_len, int vocab, uint64_t seed, me_error *err) {
    int vs, nc;
    me_task kind;
    me_status st = me_data_task_info(task, vocab, max_len, &vs, &nc, &kind, err);
    if (st != ME_OK) return st;
    if (n_train < 1 || n_valid < 1)
        return me_error_set(err, ME_ERR_CONFIG, "generate %s: n_train=%zu n_valid=%zu; expected both >= 1", task,
                            n_train, n_valid);
    if (min_len < 1 || min_len > max_len)
        return me_error_set(err, ME_ERR_CONFIG, "generate %s: min_len=%d max_len=%d; expected 1 <= min_len <= max_len",
                            task, min_len, max_len);
    if (n_valid > ((size_t)1 << 40) / (size_t)max_len)
        return me_error_set(err, ME_ERR_CONFIG, "generate %s: n_valid=%zu x max_len=%d tokens is too many to hold",
                            task, n_valid, max_len);
    gen_task id = gen_tasks[find_task(task)].id;
    seen_set S = {0};
    S.max_len = max_len;
    S.cap = 16;
    while (S.cap < 2 * n_valid) S.cap *= 2;
    S.tok = malloc(n_valid * (size_t)max_len * sizeof *S.tok);
    S.len = malloc(n_valid * sizeof *S.len);
    S.slot = calloc(S.cap, sizeof *S.slot);
    int32_t *x = malloc((size_t)max_len * sizeof *x), *y = malloc((size_t)max_len * sizeof *y); /* [max_len] */
    if (!S.tok || !S.len || !S.slot || !x || !y) {
        st = me_error_set(err, ME_ERR_NOMEM, "generate %s: out of memory for %zu validation examples", task, n_valid);
        goto done;
    }
    me_rng rng;
    me_rng_seed(&rng, seed);
    int ok = split_header(valid, task, "valid", n_train, n_valid, min_len, max_len, vocab, seed, vs, nc, kind) &&
             split_header(train, task, "train", n_train, n_valid, min_len, max_len, vocab, seed, vs, nc, kind);
    size_t ny = kind == ME_TASK_TAG ? 0 : 1;
    /* the validation set first, then training examples whose input it does not hold: an input decides
     * its target, so no example is in both */
    for (size_t i = 0; ok && i < n_valid; i++) {
        size_t l = (size_t)min_len + (size_t)me_rng_below(&rng, (uint64_t)(max_len - min_len + 1)), at;
        int32_t *xi = S.tok + i * (size_t)max_len;
        for (size_t j = 0; j < l; j++) xi[j] = (int32_t)me_rng_below(&rng, (uint64_t)vocab);
        S.len[i] = l;
        if (!seen_find(&S, xi, l, &at)) {
            S.slot[at] = i + 1;
            S.distinct++;
        }
        gen_targets(id, xi, l, y);
        ok = write_tokens(valid, xi, l, '\t') && write_tokens(valid, y, ny ? ny : l, '\n');
    }
    if (ok && input_space(min_len, max_len, vocab, UINT64_MAX / 2) <= (uint64_t)S.distinct) {
        st = me_error_set(err, ME_ERR_CONFIG,
                          "generate %s: the %zu validation examples hold every one of the task's %zu possible inputs "
                          "(lengths %d..%d, vocab %d), so no training example can differ; lower --valid or raise "
                          "--max-len or --vocab", task, n_valid, S.distinct, min_len, max_len, vocab);
        goto done;
    }
    /* rejection sampling; bounded, since a nearly exhausted input space makes it slow */
    size_t tries = 0, limit = n_train > SIZE_MAX / 1000 - 1000000 ? SIZE_MAX : 1000 * n_train + 1000000;
    for (size_t i = 0; ok && i < n_train;) {
        size_t l = (size_t)min_len + (size_t)me_rng_below(&rng, (uint64_t)(max_len - min_len + 1)), at;
        for (size_t j = 0; j < l; j++) x[j] = (int32_t)me_rng_below(&rng, (uint64_t)vocab);
        if (++tries > limit) {
            st = me_error_set(err, ME_ERR_CONFIG,
                              "generate %s: only %zu of %zu training examples drawn outside the validation set after "
                              "%zu tries; the task has few inputs left (lengths %d..%d, vocab %d): lower --valid or "
                              "raise --max-len or --vocab", task, i, n_train, limit, min_len, max_len, vocab);
            goto done;
        }
        if (seen_find(&S, x, l, &at)) continue;
        gen_targets(id, x, l, y);
        ok = write_tokens(train, x, l, '\t') && write_tokens(train, y, ny ? ny : l, '\n');
        i++;
    }
    if (!ok || fflush(train) != 0 || ferror(train) || fflush(valid) != 0 || ferror(valid))
        st = me_error_set(err, ME_ERR_IO, "generate %s: write failed: %s", task, strerror(errno));
done:
    free(S.tok), free(S.len), free(S.slot), free(x), free(y);
    return st;
}

me_status me_data_generate_split_dir(const char *dir, const char *task, size_t n_train, size_t n_valid, int min_len,
                                     int max_len, int vocab, uint64_t seed, me_error *err) {
    char *tbuf = NULL, *vbuf = NULL;
    size_t tlen = 0, vlen = 0;
    FILE *tf = open_memstream(&tbuf, &tlen), *vf = open_memstream(&vbuf, &vlen);
    me_status st = !tf || !vf ? me_error_set(err, ME_ERR_NOMEM, "%s: out of memory", dir) : ME_OK;
    if (!st) st = me_data_generate_split(tf, vf, task, n_train, n_valid, min_len, max_len, vocab, seed, err);
    if (tf && fclose(tf) != 0 && !st) st = me_error_set(err, ME_ERR_NOMEM, "%s: out of memory", dir);
    if (vf && fclose(vf) != 0 && !st) st = me_error_set(err, ME_ERR_NOMEM, "%s: out of memory", dir);
    size_t n = strlen(dir) + 16;
    char *path = malloc(n);
    if (!st && !path) st = me_error_set(err, ME_ERR_NOMEM, "%s: out of memory", dir);
    if (!st) st = me_file_mkdir_p(dir, err);
    if (!st) {
        snprintf(path, n, "%s/valid.txt", dir);
        st = me_file_write_atomic(path, vbuf, vlen, err);
    }
    if (!st) {
        snprintf(path, n, "%s/train.txt", dir);
        st = me_file_write_atomic(path, tbuf, tlen, err);
    }
    free(path);
    free(tbuf);
    free(vbuf);
    return st;
}
