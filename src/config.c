/* Run configuration: one table of known keys (me_config_keys) drives defaults, parsing, range checks, origins,
 * writing and the comparisons a checkpoint makes.
 *
 * Files go through inih's ini_parse_stream with our own line reader. The reader hands inih one
 * physical line per call, so its line counter is the line number the handler reports. It also
 * strips leading whitespace (so indented keys are keys, never inih's multi-line continuations),
 * checks section headers (an empty unknown section is still refused) and refuses lines longer than
 * inih's fixed line buffer instead of letting inih split them. The first error wins; loading works
 * on a copy so that a refused file leaves the caller's config unchanged. */
#include "minienc/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "config_keys.h"
#include "internal.h"

static const char *const activation_names[] = {"relu", "gelu"};
static const char *const positional_names[] = {"learned", "sinusoidal"};
static const char *const task_names[] = {"tag", "classify"};
static const char *const optimizer_names[] = {"adamw", "sgd"};
static const char *const schedule_names[] = {"constant", "cosine", "noam"};

/* Enum fields are stored through an int pointer; GCC and Clang give these enums int's size. */
_Static_assert(sizeof(me_activation) == sizeof(int) && sizeof(me_positional) == sizeof(int) &&
                   sizeof(me_task) == sizeof(int) && sizeof(me_optimizer) == sizeof(int) &&
                   sizeof(me_schedule) == sizeof(int),
               "config enums must have the size of int");

#define OFF(field) offsetof(me_config, field)
#define CHOICES(names) names, (int)(sizeof names / sizeof names[0])
#define ARCH ME_KEY_ARCH

/* Every key: defaults follow PyTorch where it has one. Keys of a section are adjacent, sections in the
 * order they are written. log.out_dir's default is replaced by runs/NAME when a file NAME.ini is
 * loaded. */
const key_spec me_config_keys[] = {
    {"model.d_model", K_INT, OFF(model.d_model), NULL, 1, INT_MAX, ARCH | F_REQUIRED, NULL, 0},
    {"model.n_heads", K_INT, OFF(model.n_heads), NULL, 1, INT_MAX, ARCH | F_REQUIRED, NULL, 0},
    {"model.d_ff", K_INT, OFF(model.d_ff), "2048", 1, INT_MAX, ARCH, NULL, 0},
    {"model.n_layers", K_INT, OFF(model.n_layers), "1", 1, INT_MAX, ARCH, NULL, 0},
    {"model.activation", K_ENUM, OFF(model.activation), "relu", 0, 0, ARCH, CHOICES(activation_names)},
    {"model.norm_first", K_BOOL, OFF(model.norm_first), "false", 0, 1, ARCH, NULL, 0},
    {"model.final_norm", K_BOOL, OFF(model.final_norm), "false", 0, 1, ARCH, NULL, 0},
    {"model.layer_norm_eps", K_FLOAT, OFF(model.layer_norm_eps), "1e-5", 0, 0, ARCH | F_LO_OPEN, NULL, 0},
    {"model.dropout", K_FLOAT, OFF(model.dropout), "0.1", 0, 1, F_HAS_HI | F_HI_OPEN, NULL, 0},
    {"model.vocab_size", K_INT, OFF(model.vocab_size), "0", 0, INT_MAX, ARCH, NULL, 0}, /* 0: encoder only */
    {"model.n_classes", K_INT, OFF(model.n_classes), "0", 0, INT_MAX, ARCH, NULL, 0},   /* 0: vocab_size */
    {"model.max_len", K_INT, OFF(model.max_len), "64", 1, INT_MAX, ARCH, NULL, 0},
    {"model.positional", K_ENUM, OFF(model.positional), "learned", 0, 0, ARCH, CHOICES(positional_names)},
    {"data.task", K_ENUM, OFF(data.task), "tag", 0, 0, ARCH, CHOICES(task_names)},
    {"data.train", K_PATH, OFF(data.train), NULL, 0, 0, 0, NULL, 0},
    {"data.valid", K_PATH, OFF(data.valid), NULL, 0, 0, 0, NULL, 0},
    {"train.steps", K_LONG, OFF(train.steps), "1000", 0, (double)LONG_MAX, 0, NULL, 0},
    {"train.batch_size", K_INT, OFF(train.batch_size), "32", 1, INT_MAX, 0, NULL, 0},
    {"train.optimizer", K_ENUM, OFF(train.optimizer), "adamw", 0, 0, 0, CHOICES(optimizer_names)},
    {"train.lr", K_DOUBLE, OFF(train.lr), "1e-3", 0, 0, 0, NULL, 0},
    {"train.beta1", K_DOUBLE, OFF(train.beta1), "0.9", 0, 1, F_HAS_HI | F_HI_OPEN, NULL, 0},
    {"train.beta2", K_DOUBLE, OFF(train.beta2), "0.999", 0, 1, F_HAS_HI | F_HI_OPEN, NULL, 0},
    {"train.eps", K_DOUBLE, OFF(train.eps), "1e-8", 0, 0, F_LO_OPEN, NULL, 0},
    {"train.weight_decay", K_DOUBLE, OFF(train.weight_decay), "0.01", 0, 0, 0, NULL, 0},
    {"train.decay_norm_and_bias", K_BOOL, OFF(train.decay_norm_and_bias), "false", 0, 1, 0, NULL, 0},
    {"train.momentum", K_DOUBLE, OFF(train.momentum), "0", 0, 0, 0, NULL, 0},
    {"train.schedule", K_ENUM, OFF(train.schedule), "constant", 0, 0, 0, CHOICES(schedule_names)},
    {"train.warmup", K_INT, OFF(train.warmup), "0", 0, INT_MAX, 0, NULL, 0},
    {"train.clip_grad_norm", K_DOUBLE, OFF(train.clip_grad_norm), "0", 0, 0, 0, NULL, 0}, /* 0: off */
    {"train.seed", K_U64, OFF(train.seed), "0", 0, 0, 0, NULL, 0},
    {"train.eval_every", K_INT, OFF(train.eval_every), "100", 0, INT_MAX, 0, NULL, 0},
    {"train.stop_at_accuracy", K_DOUBLE, OFF(train.stop_at_accuracy), "0", 0, 1, F_HAS_HI, NULL, 0}, /* 0: off */
    {"train.threads", K_INT, OFF(train.threads), "0", 0, 1024, ME_KEY_MACHINE, NULL, 0}, /* 0: all cores */
    {"train.thread_shards", K_INT, OFF(train.thread_shards), "0", 0, 1024, ME_KEY_MACHINE, NULL, 0}, /* 0: auto, 1: kernels split */
    {"log.out_dir", K_PATH, OFF(log.out_dir), "runs/default", 0, 0, ME_KEY_RUN, NULL, 0},
    {"log.history_every", K_INT, OFF(log.history_every), "10", 1, INT_MAX, 0, NULL, 0},
    {"log.checkpoint_every", K_INT, OFF(log.checkpoint_every), "0", 0, INT_MAX, 0, NULL, 0}, /* 0: at the end */
};
const int me_config_n_keys = (int)(sizeof me_config_keys / sizeof me_config_keys[0]);
_Static_assert(sizeof me_config_keys / sizeof me_config_keys[0] <= 64, "every key must fit in me_config.origins");

/* ---- small helpers ---------------------------------------------------------------------------- */

static int *field_int(me_config *c, const key_spec *k) { return (int *)((char *)c + k->offset); }
static void *field(me_config *c, const key_spec *k) { return (char *)c + k->offset; }

/* Index of the first key of section s[0, len), or -1. */
static int find_section(const char *s, size_t len) {
    for (int i = 0; i < me_config_n_keys; i++)
        if (opens_section(i) && section_len(me_config_keys[i].key) == len && strncmp(me_config_keys[i].key, s, len) == 0) return i;
    return -1;
}

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions), case-insensitive,
 * so that "d_modle" is one edit from "d_model". Inputs longer than 63 characters are cut. Declared in
 * internal.h for the command line's hints. */
int me_edit_distance(const char *a, size_t la, const char *b, size_t lb) {
    enum { M = 64 };
    int d[M][M];
    if (la > M - 1) la = M - 1;
    if (lb > M - 1) lb = M - 1;
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            int cost = ca != cb;
            int best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best) best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

static me_status unknown_section(const char *where, const char *s, size_t len, me_error *err) {
    int best = 0, best_d = INT_MAX;
    for (int i = 0; i < me_config_n_keys; i++) {
        if (!opens_section(i)) continue;
        int dist = me_edit_distance(s, len, me_config_keys[i].key, section_len(me_config_keys[i].key));
        if (dist < best_d) best_d = dist, best = i;
    }
    return me_error_set(err, ME_ERR_CONFIG, "%s: unknown section '[%.*s]', did you mean '[%.*s]'?", where,
                        (int)(len > 100 ? 100 : len), s, (int)section_len(me_config_keys[best].key), me_config_keys[best].key);
}

/* An unknown "section.name": suggest the known key whose name is nearest (a key put in the wrong
 * section is found too; ties go to the key in the same section). */
static me_status unknown_key(const char *where, const char *section, const char *name, me_error *err) {
    int best = 0, best_d = INT_MAX;
    size_t ls = strlen(section), ln = strlen(name);
    for (int i = 0; i < me_config_n_keys; i++) {
        const char *kn = key_name_part(me_config_keys[i].key);
        int dist = 2 * me_edit_distance(name, ln, kn, strlen(kn));
        if (!(section_len(me_config_keys[i].key) == ls && strncmp(me_config_keys[i].key, section, ls) == 0)) dist += 1;
        if (dist < best_d) best_d = dist, best = i;
    }
    if (ls == 0)
        return me_error_set(err, ME_ERR_CONFIG,
                            "%s: key '%.100s' comes before any [section] header, did you mean '%s'?", where,
                            name, me_config_keys[best].key);
    return me_error_set(err, ME_ERR_CONFIG, "%s: unknown key '%.60s.%.100s', did you mean '%s'?", where,
                        section, name, me_config_keys[best].key);
}

/* Looks up "section.name"; on failure sets an unknown-section or unknown-key error. */
static int lookup(const char *where, const char *section, const char *name, me_error *err) {
    char full[128];
    int n = snprintf(full, sizeof full, "%s.%s", section, name);
    if (n > 0 && (size_t)n < sizeof full) {
        int i = find_key(full);
        if (i >= 0) return i;
    }
    if (*section && find_section(section, strlen(section)) < 0)
        unknown_section(where, section, strlen(section), err);
    else
        unknown_key(where, section, name, err);
    return -1;
}

static void describe_expected(const key_spec *k, char *buf, size_t cap) {
    switch (k->kind) {
    case K_INT:
    case K_LONG:
        if (k->kind == K_INT && k->hi > 0 && k->hi < (double)INT_MAX)
            snprintf(buf, cap, "an integer in [%.0f, %.0f]", k->lo, k->hi);
        else
            snprintf(buf, cap, "an integer >= %.0f", k->lo);
        break;
    case K_U64: snprintf(buf, cap, "an unsigned 64-bit integer"); break;
    case K_BOOL: snprintf(buf, cap, "true, false, 1, 0, yes, no, on or off"); break;
    case K_PATH: snprintf(buf, cap, "a path"); break;
    case K_ENUM: {
        size_t used = (size_t)snprintf(buf, cap, "one of: ");
        for (int i = 0; i < k->n_choices && used < cap; i++)
            used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", k->choices[i]);
        break;
    }
    case K_FLOAT:
    case K_DOUBLE:
        if (k->flags & F_HAS_HI)
            snprintf(buf, cap, "a finite float in %s%g, %g%s", (k->flags & F_LO_OPEN) ? "(" : "[", k->lo, k->hi,
                     (k->flags & F_HI_OPEN) ? ")" : "]");
        else
            snprintf(buf, cap, "a finite float %s %g", (k->flags & F_LO_OPEN) ? ">" : ">=", k->lo);
        break;
    }
}

static int float_in_range(const key_spec *k, double v) {
    if (!isfinite(v)) return 0;
    if ((k->flags & F_LO_OPEN) ? !(v > k->lo) : !(v >= k->lo)) return 0;
    if (k->flags & F_HAS_HI) {
        if ((k->flags & F_HI_OPEN) ? !(v < k->hi) : !(v <= k->hi)) return 0;
    }
    return 1;
}

static int all_digits(const char *s, int allow_sign) {
    if (allow_sign && (*s == '-' || *s == '+')) s++;
    if (!*s) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

static void set_origin(me_config *c, const char *key, const char *origin) {
    for (int i = 0; i < c->n_origins; i++) {
        if (strcmp(c->origins[i].key, key) == 0) {
            snprintf(c->origins[i].origin, sizeof c->origins[i].origin, "%s", origin);
            return;
        }
    }
    /* At most one entry per key and me_config_n_keys <= 64 (static assert above). */
    me_config_origin_entry *e = &c->origins[c->n_origins++];
    snprintf(e->key, sizeof e->key, "%s", key);
    snprintf(e->origin, sizeof e->origin, "%s", origin);
}

/* Joins a relative path onto base ("" or "." keep it as given); absolute paths are kept. */
static int resolve_path(char *out, size_t cap, const char *base, const char *path) {
    int n;
    if (path[0] == '/' || !base || !*base || strcmp(base, ".") == 0)
        n = snprintf(out, cap, "%s", path);
    else if (base[strlen(base) - 1] == '/')
        n = snprintf(out, cap, "%s%s", base, path);
    else
        n = snprintf(out, cap, "%s/%s", base, path);
    return n >= 0 && (size_t)n < cap;
}

/* Bytes a config may not hold, in a file or a --set value alike (so that whatever is accepted can be
 * written and loaded back): ASCII control characters other than the whitespace tab, form feed and
 * vertical tab. */
static int is_control_byte(unsigned char ch) {
    return (ch < 0x20 && ch != '\t' && ch != '\f' && ch != '\v') || ch == 0x7f;
}

/* Parses value for key k and stores it in c. Relative paths are joined onto base. Nothing is stored
 * on error. */
static me_status parse_into(me_config *c, const key_spec *k, const char *value, const char *where,
                            const char *base, me_error *err) {
    char expect[128];
    describe_expected(k, expect, sizeof expect);
    if (!*value) return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': empty value, expected %s", where, k->key, expect);
    for (const char *p = value; *p; p++)
        if (is_control_byte((unsigned char)*p))
            return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': control byte 0x%02x in the value, expected %s",
                                where, k->key, (unsigned char)*p, expect);
    switch (k->kind) {
    case K_INT:
    case K_LONG: {
        if (!all_digits(value, 1))
            return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': '%.100s' is not an integer, expected %s", where,
                                k->key, value, expect);
        errno = 0;
        long v = strtol(value, NULL, 10);
        double hi = k->kind == K_INT ? (double)INT_MAX : (double)LONG_MAX;
        if (k->hi > 0 && k->hi < hi) hi = k->hi; /* a key's own bound (e.g. train.threads) */
        if (errno == ERANGE || (double)v > hi)
            return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': '%.100s' is too large, expected %s (at most %.0f)",
                                where, k->key, value, expect, hi);
        if ((double)v < k->lo)
            return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': '%.100s' is out of range, expected %s", where,
                                k->key, value, expect);
        if (k->kind == K_INT)
            *field_int(c, k) = (int)v;
        else
            *(long *)field(c, k) = v;
        break;
    }
    case K_U64: {
        if (!all_digits(value, 0))
            return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': '%.100s' is not an integer, expected %s", where,
                                k->key, value, expect);
        errno = 0;
        unsigned long long v = strtoull(value, NULL, 10);
        if (errno == ERANGE)
            return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': '%.100s' is too large, expected %s", where,
                                k->key, value, expect);
        *(uint64_t *)field(c, k) = (uint64_t)v;
        break;
    }
    case K_FLOAT:
    case K_DOUBLE: {
        /* parsed at the field's own precision, so that range and underflow refer to what is stored */
        int single = k->kind == K_FLOAT;
        char *end;
        errno = 0;
        double v = single ? (double)strtof(value, &end) : strtod(value, &end);
        if (end == value || *end)
            return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': '%.100s' is not a number, expected %s", where,
                                k->key, value, expect);
        if (!isfinite(v))
            return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': '%.100s' is not finite, expected %s", where,
                                k->key, value, expect);
        if (errno == ERANGE && v == 0.0)
            return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': '%.100s' is too small for a %s, expected %s",
                                where, k->key, value, single ? "float" : "double", expect);
        if (!float_in_range(k, v))
            return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': '%.100s' is out of range, expected %s", where,
                                k->key, value, expect);
        if (single)
            *(float *)field(c, k) = (float)v;
        else
            *(double *)field(c, k) = v;
        break;
    }
    case K_BOOL: {
        static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
        int v = -1;
        for (int j = 0; j < 4; j++) {
            if (strcasecmp(value, yes[j]) == 0) v = 1;
            if (strcasecmp(value, no[j]) == 0) v = 0;
        }
        if (v < 0)
            return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': '%.100s' is not a boolean, expected %s", where,
                                k->key, value, expect);
        *field_int(c, k) = v;
        break;
    }
    case K_ENUM: {
        int v = -1;
        for (int j = 0; j < k->n_choices; j++)
            if (strcasecmp(value, k->choices[j]) == 0) v = j;
        if (v < 0)
            return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': '%.100s' is not a valid choice, expected %s",
                                where, k->key, value, expect);
        *field_int(c, k) = v;
        break;
    }
    case K_PATH: {
        char buf[ME_PATH_MAX];
        if (!resolve_path(buf, sizeof buf, base, value))
            return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': path '%.100s...' is too long, expected at most %d bytes",
                                where, k->key, value, ME_PATH_MAX - 1);
        memcpy(field(c, k), buf, strlen(buf) + 1);
        break;
    }
    }
    return ME_OK;
}

/* Parses value for key i and stores it in c, recording `where` as its origin. */
static me_status apply(me_config *c, int i, const char *value, const char *where, const char *base,
                       me_error *err) {
    me_status st = parse_into(c, &me_config_keys[i], value, where, base, err);
    if (st == ME_OK) set_origin(c, me_config_keys[i].key, where);
    return st;
}

/* ---- public API: defaults and origins --------------------------------------------------------- */

void me_config_defaults(me_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < me_config_n_keys; i++) {
        if (!me_config_keys[i].def) continue;
        me_error err;
        me_status st = parse_into(c, &me_config_keys[i], me_config_keys[i].def, "default", NULL, &err);
        assert(st == ME_OK && "every default in me_config_keys parses"); /* tests/test_config.c checks the values */
        (void)st;
    }
    snprintf(c->dir, sizeof c->dir, ".");
}

const char *me_config_origin(const me_config *c, const char *key) {
    for (int i = 0; i < c->n_origins; i++)
        if (strcmp(c->origins[i].key, key) == 0) return c->origins[i].origin;
    return "default";
}

/* ---- loading ---------------------------------------------------------------------------------- */

typedef struct {
    FILE *f;          /* source: a file ... */
    const char *text; /* ... or NUL-terminated text */
    size_t pos;
    char *buf; /* current physical line */
    size_t cap;
    int line; /* 1-based number of the line last handed to inih */
    int io_errno;
    int io_failed;

    me_config *c;
    const char *name; /* file name used in messages and origins */
    const char *base; /* folder that relative paths are joined onto */
    int seen_line[64]; /* line where each key was set in this source, 0 if not */
    char pos_buf[ME_ORIGIN_MAX];

    int failed;
    int err_line;
    me_error err;
    int nomem;
    size_t len; /* bytes in buf (a file line may hold NUL bytes, so strlen is not its length) */
} load_state;

static const char *where_now(load_state *s) {
    snprintf(s->pos_buf, sizeof s->pos_buf, "%s:%d", s->name, s->line);
    return s->pos_buf;
}

static void fail_now(load_state *s) {
    s->failed = 1;
    s->err_line = s->line;
}

/* Longest physical line read from a file, line end included (longer lines are refused; inih itself
 * takes at most INI_MAX_LINE - 1 characters, and only comments may be longer). */
#define CONFIG_RAW_LINE_MAX 65536

/* Reads one physical line into s->buf without its line ending. Returns 0 at the end. */
static int next_physical_line(load_state *s) {
    size_t len;
    if (s->f) {
        /* Bounded, unlike getline: a config named /dev/zero or a binary file without line ends must
         * be refused, not read into all the memory there is. */
        len = 0;
        int ch = 0;
        while ((ch = getc(s->f)) != EOF) {
            if (len + 2 > s->cap) {
                if (s->cap >= CONFIG_RAW_LINE_MAX) {
                    if (!s->failed) {
                        me_error_set(&s->err, ME_ERR_CONFIG, "%s:%d: line is longer than %d bytes, expected at most %d",
                                     s->name, s->line + 1, CONFIG_RAW_LINE_MAX - 2, INI_MAX_LINE - 1);
                        s->failed = 1;
                        s->err_line = s->line + 1;
                    }
                    return 0;
                }
                size_t cap = s->cap ? 2 * s->cap : 256;
                if (cap > CONFIG_RAW_LINE_MAX) cap = CONFIG_RAW_LINE_MAX;
                char *b = realloc(s->buf, cap);
                if (!b) {
                    s->nomem = 1;
                    return 0;
                }
                s->buf = b;
                s->cap = cap;
            }
            s->buf[len++] = (char)ch;
            if (ch == '\n') break;
        }
        if (ferror(s->f)) {
            s->io_failed = 1;
            s->io_errno = errno;
            return 0;
        }
        if (len == 0) return 0;
        s->buf[len] = '\0';
    } else {
        if (!s->text[s->pos]) return 0;
        const char *start = s->text + s->pos;
        const char *nl = strchr(start, '\n');
        len = nl ? (size_t)(nl - start) + 1 : strlen(start);
        if (len + 1 > s->cap) {
            char *b = realloc(s->buf, len + 1);
            if (!b) {
                s->nomem = 1;
                return 0;
            }
            s->buf = b;
            s->cap = len + 1;
        }
        memcpy(s->buf, start, len);
        s->buf[len] = '\0';
        s->pos += len;
    }
    while (len > 0 && (s->buf[len - 1] == '\n' || s->buf[len - 1] == '\r')) s->buf[--len] = '\0';
    s->len = len;
    return 1;
}

/* Refuses what inih would accept silently (an empty unknown section) or report vaguely. */
static void check_line(load_state *s, const char *p) {
    if (!*p || *p == ';' || *p == '#') return;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (!close) {
            me_error_set(&s->err, ME_ERR_CONFIG, "%s: section header '%.60s' has no closing ']'", where_now(s), p);
            fail_now(s);
        } else if (find_section(p + 1, (size_t)(close - p - 1)) < 0) {
            unknown_section(where_now(s), p + 1, (size_t)(close - p - 1), &s->err);
            fail_now(s);
        }
        return;
    }
    if (!strchr(p, '=') && !strchr(p, ':')) {
        me_error_set(&s->err, ME_ERR_CONFIG,
                     "%s: '%.60s' is neither a [section] header nor a 'key = value' line", where_now(s), p);
        fail_now(s);
    }
}

/* A NUL byte would silently cut the line short (inih sees a C string) and other control bytes would
 * end up raw in messages: refuse both, naming the column. Tabs, form feeds and vertical tabs are
 * whitespace; bytes >= 0x80 (UTF-8 in paths) are kept. */
static void check_bytes(load_state *s) {
    for (size_t i = 0; i < s->len; i++) {
        unsigned char ch = (unsigned char)s->buf[i];
        if (is_control_byte(ch)) {
            if (ch)
                me_error_set(&s->err, ME_ERR_CONFIG, "%s:%zu: control byte 0x%02x, expected text", where_now(s), i + 1,
                             ch);
            else
                me_error_set(&s->err, ME_ERR_CONFIG, "%s:%zu: NUL byte, expected text", where_now(s), i + 1);
            fail_now(s);
            return;
        }
    }
}

static char *reader(char *str, int num, void *stream) {
    load_state *s = stream;
    if (!next_physical_line(s)) return NULL;
    s->line++;
    if (!s->failed) check_bytes(s);
    char *p = s->buf;
    if (s->line == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF)
        p += 3;
    while (*p == ' ' || *p == '\t' || *p == '\f' || *p == '\v') p++;
    size_t len = strlen(p);
    if (len + 1 > (size_t)num) {
        if (*p == ';' || *p == '#') {
            p = ";";
        } else {
            if (!s->failed) {
                me_error_set(&s->err, ME_ERR_CONFIG, "%s: line is %zu characters long, expected at most %d",
                             where_now(s), len, num - 1);
                fail_now(s);
            }
            p = "";
        }
        len = strlen(p);
    }
    if (!s->failed) check_line(s, p);
    memcpy(str, p, len + 1);
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
    load_state *s = user;
    if (s->failed) return 0;
    const char *where = where_now(s);
    int i = lookup(where, section, name, &s->err);
    if (i < 0) {
        fail_now(s);
        return 0;
    }
    if (s->seen_line[i]) {
        me_error_set(&s->err, ME_ERR_CONFIG, "%s: key '%s' is set twice (first at line %d), expected it once",
                     where, me_config_keys[i].key, s->seen_line[i]);
        fail_now(s);
        return 0;
    }
    if (apply(s->c, i, value, where, s->base, &s->err) != ME_OK) {
        fail_now(s);
        return 0;
    }
    s->seen_line[i] = s->line;
    return 1;
}

/* "runs/NAME" with NAME the base name of path without ".ini". */
static void default_out_dir(me_config *c, const char *path) {
    if (strcmp(me_config_origin(c, "log.out_dir"), "default") != 0) return;
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n >= 4 && strcmp(b + n - 4, ".ini") == 0) n -= 4;
    if (n == 0)
        snprintf(c->log.out_dir, sizeof c->log.out_dir, "runs/default");
    else
        snprintf(c->log.out_dir, sizeof c->log.out_dir, "runs/%.*s", (int)(n > 1000 ? 1000 : n), b);
}

/* Parses the source in s over a copy of c; commits only on success. */
static me_status load_source(me_config *c, load_state *s, const char *name, const char *dir, me_error *err) {
    if (strlen(name) >= ME_PATH_MAX)
        return me_error_set(err, ME_ERR_IO, "%.100s...: config path is longer than %d bytes", name, ME_PATH_MAX - 1);
    me_config *work = malloc(sizeof *work);
    if (!work) return me_error_set(err, ME_ERR_NOMEM, "%s: out of memory loading the config", name);
    memcpy(work, c, sizeof *work);
    snprintf(work->path, sizeof work->path, "%s", name);
    snprintf(work->dir, sizeof work->dir, "%s", dir);
    s->c = work;
    s->name = name;
    s->base = work->dir;

    int rc = ini_parse_stream(reader, s, handler, s);
    me_status st = ME_OK;
    free(s->buf);
    s->buf = NULL;
    if (s->io_failed) {
        /* a directory opens but does not read: bad input, like a missing file */
        st = me_error_set(err, s->io_errno == EISDIR ? ME_ERR_NOFILE : ME_ERR_IO, "%s: cannot read config file: %s",
                          name, strerror(s->io_errno));
    } else if (rc == -2 || s->nomem) {
        st = me_error_set(err, ME_ERR_NOMEM, "%s: out of memory parsing the config", name);
    } else if (rc > 0 && (!s->failed || rc < s->err_line)) {
        /* A line inih refused that the reader's own checks let through. */
        st = me_error_set(err, ME_ERR_CONFIG, "%s:%d: cannot parse this line, expected '[section]', "
                          "'key = value' or a comment", name, rc);
    } else if (s->failed) {
        st = me_error_set(err, ME_ERR_CONFIG, "%s", s->err.msg);
    } else if (rc != 0) {
        st = me_error_set(err, ME_ERR_CONFIG, "%s: cannot parse the config (inih error %d)", name, rc);
    }
    if (st == ME_OK) {
        default_out_dir(work, name);
        memcpy(c, work, sizeof *c);
    }
    free(work);
    return st;
}

me_status me_config_load(me_config *c, const char *path, me_error *err) {
    char dir[ME_PATH_MAX];
    if (strlen(path) >= ME_PATH_MAX)
        return me_error_set(err, ME_ERR_IO, "%.100s...: config path is longer than %d bytes", path, ME_PATH_MAX - 1);
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);

    FILE *f = fopen(path, "r");
    if (!f) return me_error_set(err, ME_ERR_NOFILE, "%s: cannot open config file: %s", path, strerror(errno));
    load_state *s = calloc(1, sizeof *s);
    if (!s) {
        fclose(f);
        return me_error_set(err, ME_ERR_NOMEM, "%s: out of memory loading the config", path);
    }
    s->f = f;
    me_status st = load_source(c, s, path, dir, err);
    fclose(f);
    free(s);
    return st;
}

me_status me_config_load_string(me_config *c, const char *text, const char *name, me_error *err) {
    load_state *s = calloc(1, sizeof *s);
    if (!s) return me_error_set(err, ME_ERR_NOMEM, "%s: out of memory loading the config", name);
    s->text = text;
    /* Text comes from me_config_write, whose paths are already resolved against the current
     * directory, so relative paths are taken as they are (dir "."). */
    me_status st = load_source(c, s, name, ".", err);
    free(s);
    return st;
}

me_status me_config_set(me_config *c, const char *assignment, me_error *err) {
    /* The assignment is the origin in messages: a long one is cut (keeping its start, which names
     * the key) so that the message still has room to say what is wrong. */
    char where[ME_ORIGIN_MAX];
    size_t alen = strlen(assignment);
    if (alen > 160)
        snprintf(where, sizeof where, "--set %.120s... (%zu bytes)", assignment, alen);
    else
        snprintf(where, sizeof where, "--set %s", assignment);
    for (char *p = where; *p; p++)
        if (is_control_byte((unsigned char)*p)) *p = '?'; /* refused below; never echoed raw */
    const char *eq = strchr(assignment, '=');
    const char *dot = strchr(assignment, '.');
    if (!eq || !dot || dot > eq)
        return me_error_set(err, ME_ERR_CONFIG, "%s: expected section.key=value", where);

    char section[64], name[128];
    const char *a = assignment, *b = dot;
    while (a < b && isspace((unsigned char)*a)) a++;
    if ((size_t)(b - a) >= sizeof section) return unknown_section(where, a, (size_t)(b - a), err);
    memcpy(section, a, (size_t)(b - a));
    section[b - a] = '\0';
    a = dot + 1, b = eq;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    if ((size_t)(b - a) >= sizeof name)
        return me_error_set(err, ME_ERR_CONFIG, "%s: unknown key (name too long)", where);
    memcpy(name, a, (size_t)(b - a));
    name[b - a] = '\0';

    const char *v = eq + 1;
    while (isspace((unsigned char)*v)) v++;
    size_t lv = strlen(v);
    while (lv > 0 && isspace((unsigned char)v[lv - 1])) lv--;
    char *value = malloc(lv + 1);
    if (!value) return me_error_set(err, ME_ERR_NOMEM, "%s: out of memory", where);
    memcpy(value, v, lv);
    value[lv] = '\0';

    me_status st;
    int i = lookup(where, section, name, err);
    if (i < 0)
        st = ME_ERR_CONFIG;
    else
        st = apply(c, i, value, where, NULL, err); /* --set paths are relative to the current directory */
    free(value);
    return st;
}

/* ---- absolute paths ---------------------------------------------------------------------------- */

void me_config_absolute_paths(me_config *c) {
    for (int i = 0; i < me_config_n_keys; i++) {
        if (me_config_keys[i].kind != K_PATH) continue;
        char *path = field(c, &me_config_keys[i]), resolved[PATH_MAX];
        if (!path[0] || path[0] == '/') continue;
        if (!(me_config_keys[i].flags & ME_KEY_RUN)) {
            /* a data file: it exists, so realpath can resolve it */
            if (realpath(path, resolved) && strlen(resolved) < ME_PATH_MAX)
                memcpy(path, resolved, strlen(resolved) + 1);
        } else if (getcwd(resolved, sizeof resolved)) {
            /* the run directory need not exist yet: join it onto the working directory */
            size_t a = strlen(resolved), b = strlen(path);
            if (a + 1 + b >= ME_PATH_MAX) continue;
            memmove(path + a + 1, path, b + 1);
            memcpy(path, resolved, a);
            path[a] = '/';
        }
    }
}

/* ---- validation ------------------------------------------------------------------------------- */

me_status me_config_validate(me_config *c, me_error *err) {
    me_model_config *m = &c->model;
    if (m->d_model == 0)
        return me_error_set(err, ME_ERR_CONFIG, "model.d_model is required: set d_model = N (N >= 1) in [model] "
                            "or pass --set model.d_model=N");
    if (m->n_heads == 0)
        return me_error_set(err, ME_ERR_CONFIG, "model.n_heads is required: set n_heads = N (N >= 1, dividing "
                            "d_model) in [model] or pass --set model.n_heads=N");

    /* Values may have been set by code, not only parsed: check every range again. */
    for (int i = 0; i < me_config_n_keys; i++) {
        const key_spec *k = &me_config_keys[i];
        char expect[128], shown[64];
        int ok = 1;
        switch (k->kind) {
        case K_INT: {
            int v = *(const int *)field_c(c, k);
            ok = v >= k->lo && (k->hi <= 0 || v <= k->hi);
            break;
        }
        case K_LONG: ok = *(const long *)field_c(c, k) >= k->lo; break;
        case K_FLOAT: ok = float_in_range(k, *(const float *)field_c(c, k)); break;
        case K_DOUBLE: ok = float_in_range(k, *(const double *)field_c(c, k)); break;
        case K_BOOL:
        case K_ENUM: {
            int v = *(const int *)field_c(c, k);
            ok = v >= 0 && v < (k->kind == K_BOOL ? 2 : k->n_choices);
            break;
        }
        case K_U64:
        case K_PATH: break;
        }
        if (ok) continue;
        describe_expected(k, expect, sizeof expect);
        me_config_format_value(c, k, shown, sizeof shown);
        return me_error_set(err, ME_ERR_CONFIG, "%s: key '%s': %s is out of range, expected %s",
                            me_config_origin(c, k->key), k->key, shown, expect);
    }

    if (m->d_model % m->n_heads != 0)
        return me_error_set(err, ME_ERR_CONFIG,
                            "%s: key 'model.d_model': %d is not divisible by model.n_heads = %d (from %s), "
                            "expected d_model to be a multiple of n_heads",
                            me_config_origin(c, "model.d_model"), m->d_model, m->n_heads,
                            me_config_origin(c, "model.n_heads"));
    if (m->vocab_size == 0 && m->n_classes != 0)
        return me_error_set(err, ME_ERR_CONFIG,
                            "%s: key 'model.n_classes': %d needs an output head, but model.vocab_size is 0 "
                            "(from %s: encoder only), expected n_classes = 0 or vocab_size >= 1",
                            me_config_origin(c, "model.n_classes"), m->n_classes,
                            me_config_origin(c, "model.vocab_size"));
    if (m->n_classes == 0) m->n_classes = m->vocab_size;
    return ME_OK;
}
