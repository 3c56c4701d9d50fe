/* Sweeps: grid expansion, run names, the record (sweep.ini), the state of each run on disk, the command
 * that trains a run, and sweep.csv. See include/minienc/sweep.h. */
#include "minienc/sweep.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "minienc/checkpoint.h"

#include "file.h"
#include "internal.h"

/* ---- small helpers ------------------------------------------------------------------------------------- */

static char *dup_printf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static char *dup_printf(const char *fmt, ...) {
    va_list ap, aq;
    va_start(ap, fmt);
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) vsnprintf(s, (size_t)n + 1, fmt, aq);
    va_end(aq);
    return s;
}

/* The "section.key" of an assignment "section.key=value" (spaces around it dropped) into key[cap];
 * 0 when there is no '=' or the key does not fit. */
static int assignment_key(const char *a, char *key, size_t cap) {
    const char *eq = strchr(a, '=');
    if (!eq) return 0;
    while (a < eq && isspace((unsigned char)*a)) a++;
    const char *e = eq;
    while (e > a && isspace((unsigned char)e[-1])) e--;
    if ((size_t)(e - a) >= cap) return 0;
    memcpy(key, a, (size_t)(e - a));
    key[e - a] = '\0';
    return 1;
}

/* Flags of a table key; -1 (as unsigned: all bits) when the key is unknown. */
static int key_index(const char *key, unsigned *flags) {
    const char *k;
    for (int i = 0; (k = me_config_key_at(i, flags)); i++)
        if (strcmp(k, key) == 0) return i;
    return -1;
}

/* The name a key goes by in run names: its name within the section, unless another section has a key of
 * the same name. */
static void key_label(const char *key, char *label, size_t cap) {
    const char *name = strchr(key, '.') ? strchr(key, '.') + 1 : key;
    const char *k;
    int same = 0;
    for (int i = 0; (k = me_config_key_at(i, NULL)); i++) {
        const char *n = strchr(k, '.') ? strchr(k, '.') + 1 : k;
        same += strcmp(n, name) == 0;
    }
    snprintf(label, cap, "%s", same > 1 ? key : name);
}

/* A config refusal of a grid value, reworded for the grid: "--grid WHAT: <the config's message without
 * its '--set ...: ' origin>". Returns the status. */
static me_status grid_error(me_error *err, me_status st, const char *what) {
    if (!err) return st;
    const char *msg = err->msg, *colon = strstr(msg, ": ");
    char rest[ME_ERROR_MSG_MAX];
    snprintf(rest, sizeof rest, "%s", strncmp(msg, "--set ", 6) == 0 && colon ? colon + 2 : msg);
    return me_error_set(err, st, "--grid %s: %s", what, rest);
}

static me_config *new_config(me_error *err) {
    me_config *c = malloc(sizeof *c);
    if (!c) me_error_set(err, ME_ERR_NOMEM, "out of memory for a config");
    return c;
}

static void axis_free(me_sweep_axis *a) {
    for (int i = 0; i < a->n; i++) free(a->values[i]);
    free(a->values);
    memset(a, 0, sizeof *a);
}

/* ---- the sweep ----------------------------------------------------------------------------------------- */

void me_sweep_free(me_sweep *s) {
    for (int i = 0; i < s->n_sets; i++) free(s->sets[i]);
    free(s->sets);
    for (int i = 0; i < s->n_axes; i++) axis_free(&s->axes[i]);
    free(s->base);
    memset(s, 0, sizeof *s);
}

me_status me_sweep_init(me_sweep *s, const char *config_path, const char *const *sets, int n_sets, me_error *err) {
    memset(s, 0, sizeof *s);
    char *real = realpath(config_path, NULL);
    if (!real) return me_error_set(err, ME_ERR_USAGE, "%s: cannot open config file: %s", config_path, strerror(errno));
    int fits = strlen(real) < sizeof s->config;
    if (fits) memcpy(s->config, real, strlen(real) + 1);
    free(real);
    if (!fits) return me_error_set(err, ME_ERR_USAGE, "%s: config path is too long", config_path);
    s->sets = calloc((size_t)n_sets + 1, sizeof *s->sets);
    if (!s->sets) return me_error_set(err, ME_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_sets; i++) {
        char key[ME_SWEEP_KEY_MAX];
        if (assignment_key(sets[i], key, sizeof key) && strcmp(key, "log.out_dir") == 0)
            return me_error_set(err, ME_ERR_USAGE, "--set %s: a sweep places its runs itself (runs/NAME/<run>), "
                                "expected --name NAME instead", sets[i]);
        if (!(s->sets[i] = strdup(sets[i]))) return me_error_set(err, ME_ERR_NOMEM, "out of memory");
        s->n_sets = i + 1;
    }
    if (!(s->base = new_config(err))) return ME_ERR_NOMEM;
    me_config_defaults(s->base);
    me_status st = me_config_load(s->base, config_path, err);
    for (int i = 0; i < n_sets && !st; i++) st = me_config_set(s->base, sets[i], err);
    if (!st) st = me_config_validate(s->base, err);
    if (st) return st;
    me_config_absolute_paths(s->base);
    return ME_OK;
}

int me_sweep_n_runs(const me_sweep *s) {
    long n = s->seeds > 0 ? s->seeds : 1;
    for (int a = 0; a < s->n_axes; a++) n *= s->axes[a].n;
    return (int)n;
}

/* Text inih gives back unchanged as a value: no ';' or '#' after whitespace (inline comments). */
static int ini_safe(const char *v) {
    for (const char *p = v; *p; p++)
        if ((*p == ';' || *p == '#') && p > v && isspace((unsigned char)p[-1])) return 0;
    return 1;
}

me_status me_sweep_add_axis(me_sweep *s, const char *spec, me_error *err) {
    char key[ME_SWEEP_KEY_MAX];
    unsigned flags = 0;
    if (!assignment_key(spec, key, sizeof key) || !strchr(key, '.'))
        return me_error_set(err, ME_ERR_USAGE, "--grid %s: expected SECTION.KEY=V1,V2,...", spec);
    if (s->n_axes == ME_SWEEP_MAX_AXES)
        return me_error_set(err, ME_ERR_USAGE, "--grid %s: more than %d grids", spec, ME_SWEEP_MAX_AXES);
    me_config *c = new_config(err);
    if (!c) return ME_ERR_NOMEM;
    me_status st = ME_OK;
    if (key_index(key, &flags) < 0) {
        /* the config's own message names the nearest known key */
        *c = *s->base;
        char probe[ME_SWEEP_KEY_MAX + 8];
        snprintf(probe, sizeof probe, "%s=0", key);
        st = grid_error(err, me_config_set(c, probe, err), key);
        goto done;
    }
    if (flags & (ME_KEY_RUN | ME_KEY_MACHINE)) {
        st = me_error_set(err, ME_ERR_USAGE, "--grid %s: %s is set by the sweep for each run (%s), expected another key",
                          key, key, (flags & ME_KEY_RUN) ? "runs/NAME/<run>" : "from --jobs, or once with --set");
        goto done;
    }
    if (s->seeds > 0 && strcmp(key, "train.seed") == 0) {
        st = me_error_set(err, ME_ERR_USAGE, "--grid train.seed and --seeds both set the seed, expected one of them");
        goto done;
    }
    for (int a = 0; a < s->n_axes; a++)
        if (strcmp(s->axes[a].key, key) == 0) {
            st = me_error_set(err, ME_ERR_USAGE, "--grid %s is given twice, expected one --grid per key", key);
            goto done;
        }
    for (int i = 0; i < s->n_sets; i++) {
        char sk[ME_SWEEP_KEY_MAX];
        if (assignment_key(s->sets[i], sk, sizeof sk) && strcmp(sk, key) == 0) {
            st = me_error_set(err, ME_ERR_USAGE, "--set %s and --grid %s both set %s, expected one of them", s->sets[i],
                              key, key);
            goto done;
        }
    }
    me_sweep_axis ax;
    memset(&ax, 0, sizeof ax);
    snprintf(ax.key, sizeof ax.key, "%s", key);
    key_label(key, ax.label, sizeof ax.label);
    const char *p = strchr(spec, '=') + 1;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && isspace((unsigned char)*p)) p++, len--;
        while (len && isspace((unsigned char)p[len - 1])) len--;
        if (len == 0) {
            st = me_error_set(err, ME_ERR_USAGE, "--grid %s: an empty value, expected V1,V2,... separated by single commas",
                              spec);
            break;
        }
        char *assign = dup_printf("%s=%.*s", key, (int)len, p);
        char **vals = realloc(ax.values, ((size_t)ax.n + 1) * sizeof *vals);
        if (!assign || !vals) {
            free(assign);
            st = me_error_set(err, ME_ERR_NOMEM, "out of memory");
            break;
        }
        ax.values = vals;
        *c = *s->base;
        if ((st = me_config_set(c, assign, err))) {
            grid_error(err, st, assign);
            free(assign);
            break;
        }
        free(assign);
        char text[ME_PATH_MAX];
        me_config_value_string(c, key, text, sizeof text);
        if (!ini_safe(text)) {
            st = me_error_set(err, ME_ERR_USAGE, "--grid %s: value '%s' holds ' ;' or ' #', which sweep.ini cannot keep",
                              key, text);
            break;
        }
        for (int j = 0; j < ax.n; j++)
            if (strcmp(ax.values[j], text) == 0) {
                st = me_error_set(err, ME_ERR_USAGE, "--grid %s: value '%.*s' is %s, as an earlier value is; expected "
                                  "distinct values", key, (int)len, p, text);
                break;
            }
        if (st) break;
        if (!(ax.values[ax.n] = strdup(text))) {
            st = me_error_set(err, ME_ERR_NOMEM, "out of memory");
            break;
        }
        ax.n++;
        if (!comma) break;
        p = comma + 1;
    }
    if (!st) {
        long runs = (long)me_sweep_n_runs(s) * ax.n;
        if (runs > ME_SWEEP_MAX_RUNS)
            st = me_error_set(err, ME_ERR_USAGE, "--grid %s makes %ld runs, expected at most %d", key, runs,
                              ME_SWEEP_MAX_RUNS);
    }
    if (st) axis_free(&ax);
    else s->axes[s->n_axes++] = ax;
done:
    free(c);
    return st;
}

me_status me_sweep_set_seeds(me_sweep *s, int n, me_error *err) {
    if (n < 1 || n > ME_SWEEP_MAX_SEEDS)
        return me_error_set(err, ME_ERR_USAGE, "--seeds %d: expected 1 to %d", n, ME_SWEEP_MAX_SEEDS);
    for (int a = 0; a < s->n_axes; a++)
        if (strcmp(s->axes[a].key, "train.seed") == 0)
            return me_error_set(err, ME_ERR_USAGE, "--grid train.seed and --seeds both set the seed, expected one of them");
    long runs = (long)me_sweep_n_runs(s) / (s->seeds > 0 ? s->seeds : 1) * n;
    if (runs > ME_SWEEP_MAX_RUNS)
        return me_error_set(err, ME_ERR_USAGE, "--seeds %d makes %ld runs, expected at most %d", n, runs,
                            ME_SWEEP_MAX_RUNS);
    s->seeds = n;
    return ME_OK;
}

void me_sweep_point(const me_sweep *s, int k, int *idx, int *seed) {
    int n_seeds = s->seeds > 0 ? s->seeds : 1;
    *seed = s->seeds > 0 ? k % n_seeds + 1 : 0;
    k /= n_seeds;
    for (int a = s->n_axes - 1; a >= 0; a--) {
        idx[a] = k % s->axes[a].n;
        k /= s->axes[a].n;
    }
}

/* Appends value to buf at *len with every byte outside [A-Za-z0-9._+-] as %XX; 0 when it does not fit. */
static int append_encoded(char *buf, size_t cap, size_t *len, const char *value) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        int plain = isalnum(*p) || *p == '.' || *p == '_' || *p == '+' || *p == '-';
        if (*len + (plain ? 1 : 3) >= cap) return 0;
        if (plain) buf[(*len)++] = (char)*p;
        else {
            buf[(*len)++] = '%';
            buf[(*len)++] = hex[*p >> 4];
            buf[(*len)++] = hex[*p & 15];
        }
    }
    buf[*len] = '\0';
    return 1;
}

me_status me_sweep_run_name(const me_sweep *s, int k, char *buf, size_t cap, me_error *err) {
    int idx[ME_SWEEP_MAX_AXES], seed;
    me_sweep_point(s, k, idx, &seed);
    /* ',' and '=' are the separators, written as they are; append_encoded escapes them in values */
    size_t len = 0, limit = cap < ME_SWEEP_NAME_MAX + 1 ? cap : ME_SWEEP_NAME_MAX + 1;
    int ok = limit > 0;
    if (ok) buf[0] = '\0';
    for (int a = 0; a < s->n_axes && ok; a++) {
        if (a && (ok = len + 1 < limit)) buf[len++] = ',', buf[len] = '\0';
        ok = ok && append_encoded(buf, limit, &len, s->axes[a].label) && len + 1 < limit;
        if (ok) buf[len++] = '=', buf[len] = '\0';
        ok = ok && append_encoded(buf, limit, &len, s->axes[a].values[idx[a]]);
    }
    if (ok && s->seeds > 0) {
        char tail[32];
        snprintf(tail, sizeof tail, "%sseed=%d", s->n_axes ? "," : "", seed);
        ok = len + strlen(tail) < limit;
        if (ok) memcpy(buf + len, tail, strlen(tail) + 1), len += strlen(tail);
    }
    if (ok && len == 0) ok = append_encoded(buf, limit, &len, "run"); /* a sweep of one run, no grid or seeds */
    if (!ok)
        return me_error_set(err, ME_ERR_USAGE, "run %d of the sweep: its name would be longer than %d bytes, expected "
                            "shorter grid values", k + 1, ME_SWEEP_NAME_MAX);
    return ME_OK;
}

int me_sweep_run_sets(const me_sweep *s, int k, char **sets) {
    int idx[ME_SWEEP_MAX_AXES], seed, n = 0;
    me_sweep_point(s, k, idx, &seed);
    for (int a = 0; a < s->n_axes; a++) sets[n++] = dup_printf("%s=%s", s->axes[a].key, s->axes[a].values[idx[a]]);
    if (s->seeds > 0) sets[n++] = dup_printf("train.seed=%d", seed);
    for (int i = 0; i < n; i++)
        if (!sets[i]) {
            for (int j = 0; j < n; j++) free(sets[j]);
            return -1;
        }
    return n;
}

me_status me_sweep_run_config(const me_sweep *s, int k, const char *run_dir, me_config *cfg, me_error *err) {
    char *sets[ME_SWEEP_MAX_AXES + 1];
    int n = me_sweep_run_sets(s, k, sets);
    if (n < 0) return me_error_set(err, ME_ERR_NOMEM, "out of memory");
    char *out = dup_printf("log.out_dir=%s", run_dir);
    me_config_defaults(cfg);
    me_status st = out ? me_config_load(cfg, s->config, err) : me_error_set(err, ME_ERR_NOMEM, "out of memory");
    for (int i = 0; i < s->n_sets && !st; i++) st = me_config_set(cfg, s->sets[i], err);
    for (int i = 0; i < n && !st; i++) st = me_config_set(cfg, sets[i], err);
    if (!st) st = me_config_set(cfg, out, err);
    if (!st) st = me_config_validate(cfg, err);
    if (st) {
        char name[ME_SWEEP_NAME_MAX + 1];
        if (me_sweep_run_name(s, k, name, sizeof name, NULL) == ME_OK) me_error_prefix(err, "run %s", name);
    } else {
        me_config_absolute_paths(cfg);
    }
    for (int i = 0; i < n; i++) free(sets[i]);
    free(out);
    return st;
}

/* ---- the folder ---------------------------------------------------------------------------------------- */

me_status me_sweep_default_dir(const char *config_path, const char *name, char *buf, size_t cap, me_error *err) {
    char stem[256];
    if (name) {
        if (!name[0] || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            return me_error_set(err, ME_ERR_USAGE, "--name '%s': expected a folder name without '/' (the sweep goes "
                                "to runs/NAME)", name);
        snprintf(stem, sizeof stem, "%s", name);
    } else {
        const char *b = strrchr(config_path, '/');
        snprintf(stem, sizeof stem, "%s", b ? b + 1 : config_path);
        size_t n = strlen(stem);
        if (me_ends_with(stem, ".ini") && n > 4) stem[n - 4] = '\0';
        snprintf(stem + strlen(stem), sizeof stem - strlen(stem), "-sweep");
    }
    int n = snprintf(buf, cap, "runs/%s", stem);
    if (n < 0 || (size_t)n >= cap) return me_error_set(err, ME_ERR_USAGE, "--name '%s': too long", stem);
    return ME_OK;
}

/* "model.norm_first=false,true" */
static char *axis_text(const me_sweep_axis *a) {
    size_t n = strlen(a->key) + 2;
    for (int i = 0; i < a->n; i++) n += strlen(a->values[i]) + 1;
    char *t = malloc(n);
    if (!t) return NULL;
    size_t len = (size_t)snprintf(t, n, "%s=", a->key);
    for (int i = 0; i < a->n; i++) len += (size_t)snprintf(t + len, n - len, "%s%s", i ? "," : "", a->values[i]);
    return t;
}

me_status me_sweep_record_write(const me_sweep *s, const char *path, me_error *err) {
    char *text = NULL, *base = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return me_error_set(err, ME_ERR_NOMEM, "out of memory writing %s", path);
    me_status st = me_config_to_string(s->base, ME_KEY_RUN, &base, err);
    fprintf(f, "; minienc sweep record: the grid, the seeds and the base config of the runs in this folder.\n"
               "; `minienc sweep` writes it before the first run starts; a later call into this folder must ask for\n"
               "; the same sweep (it then skips finished runs and resumes interrupted ones).\n[sweep]\n");
    fprintf(f, "config = %s\n", s->config);
    for (int i = 0; i < s->n_sets; i++) fprintf(f, "set = %s\n", s->sets[i]);
    for (int a = 0; a < s->n_axes && !st; a++) {
        char *t = axis_text(&s->axes[a]);
        if (!t) st = me_error_set(err, ME_ERR_NOMEM, "out of memory writing %s", path);
        else fprintf(f, "grid = %s\n", t);
        free(t);
    }
    fprintf(f, "seeds = %d\nruns = %d\n\n; the base config: every run's config before the grid's values and the seed\n",
            s->seeds, me_sweep_n_runs(s));
    if (!st) fputs(base, f);
    if (fclose(f) != 0 && !st) st = me_error_set(err, ME_ERR_NOMEM, "out of memory writing %s", path);
    if (!st) st = me_file_write_atomic(path, text, len, err);
    free(text);
    free(base);
    return st;
}

typedef struct {
    me_sweep *r;
    const char *path;
    me_error *err;
    me_status st;
    int seen_seeds;
} record_parse;

/* Splits "KEY=V1,V2" (as written) into an axis. */
static me_status parse_axis(const char *text, me_sweep_axis *ax, const char *path, me_error *err) {
    memset(ax, 0, sizeof *ax);
    const char *eq = strchr(text, '=');
    if (!eq || eq == text || (size_t)(eq - text) >= sizeof ax->key || !eq[1])
        return me_error_set(err, ME_ERR_FORMAT, "%s: [sweep] grid '%s', expected KEY=V1,V2,...", path, text);
    snprintf(ax->key, sizeof ax->key, "%.*s", (int)(eq - text), text);
    if (key_index(ax->key, NULL) < 0)
        return me_error_set(err, ME_ERR_FORMAT, "%s: [sweep] grid '%s': unknown key '%s'", path, text, ax->key);
    key_label(ax->key, ax->label, sizeof ax->label);
    for (const char *p = eq + 1;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char **vals = realloc(ax->values, ((size_t)ax->n + 1) * sizeof *vals);
        if (!vals) return me_error_set(err, ME_ERR_NOMEM, "out of memory reading %s", path);
        ax->values = vals;
        if (!(vals[ax->n] = malloc(len + 1))) return me_error_set(err, ME_ERR_NOMEM, "out of memory reading %s", path);
        memcpy(vals[ax->n], p, len);
        vals[ax->n++][len] = '\0';
        if (!comma) break;
        p = comma + 1;
    }
    return ME_OK;
}

static int record_handler(void *user, const char *section, const char *name, const char *value) {
    record_parse *rp = user;
    if (rp->st) return 0;
    me_sweep *r = rp->r;
    if (strcmp(section, "sweep") != 0) {
        rp->st = me_error_set(rp->err, ME_ERR_FORMAT, "%s: key '%s' outside [sweep]", rp->path, name);
    } else if (strcmp(name, "config") == 0) {
        snprintf(r->config, sizeof r->config, "%s", value);
    } else if (strcmp(name, "set") == 0) {
        /* the base config below is what counts; the sets say how it was made */
        char **sets = realloc(r->sets, ((size_t)r->n_sets + 1) * sizeof *sets);
        if (!sets || !(sets[r->n_sets] = strdup(value))) {
            if (sets) r->sets = sets;
            rp->st = me_error_set(rp->err, ME_ERR_NOMEM, "out of memory reading %s", rp->path);
        } else {
            r->sets = sets;
            r->n_sets++;
        }
    } else if (strcmp(name, "runs") == 0) {
        /* follows from the grid and the seeds */
    } else if (strcmp(name, "grid") == 0) {
        if (r->n_axes == ME_SWEEP_MAX_AXES)
            rp->st = me_error_set(rp->err, ME_ERR_FORMAT, "%s: more than %d grid lines", rp->path, ME_SWEEP_MAX_AXES);
        else if (!(rp->st = parse_axis(value, &r->axes[r->n_axes], rp->path, rp->err)))
            r->n_axes++;
        else
            axis_free(&r->axes[r->n_axes]);
    } else if (strcmp(name, "seeds") == 0) {
        char *end;
        long v = strtol(value, &end, 10);
        if (end == value || *end || v < 0 || v > ME_SWEEP_MAX_SEEDS)
            rp->st = me_error_set(rp->err, ME_ERR_FORMAT, "%s: [sweep] seeds '%s', expected 0 to %d", rp->path, value,
                                  ME_SWEEP_MAX_SEEDS);
        r->seeds = (int)v;
        rp->seen_seeds = 1;
    } else {
        rp->st = me_error_set(rp->err, ME_ERR_FORMAT, "%s: [sweep] unknown key '%s', expected config, set, grid, seeds "
                              "or runs", rp->path, name);
    }
    return rp->st == ME_OK;
}

me_status me_sweep_record_read(me_sweep *r, const char *path, me_error *err) {
    memset(r, 0, sizeof *r);
    char *text;
    size_t size;
    me_status st = me_file_read_all(path, "a sweep record", &text, &size, err);
    if (st) return st;
    /* the [sweep] section runs up to the next section header, where the base config starts */
    char *cfg = NULL;
    int lines = 0, headers = 0;
    for (char *p = text; *p; lines++) {
        char *q = p;
        while (*q == ' ' || *q == '\t') q++;
        if (*q == '[' && headers++ == 1) {
            cfg = p;
            break;
        }
        char *nl = strchr(p, '\n');
        if (!nl) break;
        p = nl + 1;
    }
    if (!cfg || strncmp(strchr(text, '[') ? strchr(text, '[') : "", "[sweep]", 7) != 0) {
        free(text);
        return me_error_set(err, ME_ERR_FORMAT, "%s: expected a [sweep] section followed by the base config", path);
    }
    /* the config part keeps its line numbers in messages: blank lines stand for the [sweep] part */
    char *conf_text = malloc((size_t)lines + strlen(cfg) + 1);
    if (!conf_text) {
        free(text);
        return me_error_set(err, ME_ERR_NOMEM, "out of memory reading %s", path);
    }
    memset(conf_text, '\n', (size_t)lines);
    memcpy(conf_text + lines, cfg, strlen(cfg) + 1);
    *cfg = '\0';
    record_parse rp = {r, path, err, ME_OK, 0};
    int rc = ini_parse_string(text, record_handler, &rp);
    st = rp.st;
    if (!st && rc != 0)
        st = me_error_set(err, ME_ERR_FORMAT, "%s:%d: cannot parse this line of the [sweep] section", path, rc);
    if (!st && !rp.seen_seeds) st = me_error_set(err, ME_ERR_FORMAT, "%s: [sweep] has no seeds line", path);
    long runs = r->seeds > 0 ? r->seeds : 1;
    for (int a = 0; a < r->n_axes && !st; a++) {
        for (int i = 0; i < r->axes[a].n && !st; i++)
            if (!r->axes[a].values[i][0])
                st = me_error_set(err, ME_ERR_FORMAT, "%s: [sweep] grid %s has an empty value", path, r->axes[a].key);
        runs *= r->axes[a].n;
        if (!st && runs > ME_SWEEP_MAX_RUNS)
            st = me_error_set(err, ME_ERR_FORMAT, "%s: [sweep] grids and seeds make more than %d runs", path,
                              ME_SWEEP_MAX_RUNS);
    }
    if (!st && !(r->base = new_config(err))) st = ME_ERR_NOMEM;
    if (!st) {
        me_config_defaults(r->base);
        st = me_config_load_string(r->base, conf_text, path, err);
        if (!st) st = me_config_validate(r->base, err);
    }
    free(conf_text);
    free(text);
    return st;
}

/* "model.norm_first=false,true × train.lr=0.001,0.01 × 3 seeds" into buf. */
static void describe_grid(const me_sweep_axis *axes, int n_axes, int seeds, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (int a = 0; a < n_axes && len < cap; a++) {
        char *t = axis_text(&axes[a]);
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", a ? " x " : "", t ? t : "?");
        free(t);
    }
    if (len < cap && seeds > 0) snprintf(buf + len, cap - len, "%s%d seeds", n_axes ? " x " : "", seeds);
    else if (len == 0) snprintf(buf, cap, "one run");
}

me_status me_sweep_record_check(const me_sweep *r, const me_sweep *s, const char *path, me_error *err) {
    int same = r->n_axes == s->n_axes && r->seeds == s->seeds;
    for (int a = 0; a < r->n_axes && same; a++) {
        same = strcmp(r->axes[a].key, s->axes[a].key) == 0 && r->axes[a].n == s->axes[a].n;
        for (int i = 0; i < r->axes[a].n && same; i++) same = strcmp(r->axes[a].values[i], s->axes[a].values[i]) == 0;
    }
    if (!same) {
        char was[600], now[600];
        describe_grid(r->axes, r->n_axes, r->seeds, was, sizeof was);
        describe_grid(s->axes, s->n_axes, s->seeds, now, sizeof now);
        return me_error_set(err, ME_ERR_EXISTS, "%s: this folder holds the sweep %s, this call asks for %s; expected "
                            "the same grid and seeds here, or another --name for a new sweep", path, was, now);
    }
    const char *key = me_config_first_difference_except(r->base, s->base, ME_KEY_RUN | ME_KEY_MACHINE);
    if (key) {
        char was[ME_PATH_MAX], now[ME_PATH_MAX];
        return me_error_set(err, ME_ERR_EXISTS, "%s: the sweep's runs were made with %s = %s, this call gives %s (%s); "
                            "expected the same base config here, or another --name for a new sweep", path, key,
                            me_config_value_string(r->base, key, was, sizeof was),
                            me_config_value_string(s->base, key, now, sizeof now), me_config_origin(s->base, key));
    }
    return ME_OK;
}

/* ---- runs on disk -------------------------------------------------------------------------------------- */

me_status me_sweep_run_state(const char *run_dir, const me_config *cfg, me_sweep_state *state, int64_t *step,
                             me_error *err) {
    *state = ME_SWEEP_NEW;
    *step = -1;
    me_path_kind kind = me_file_probe(run_dir);
    if (kind == ME_PATH_ABSENT || kind == ME_PATH_EMPTY_DIR) return ME_OK;
    if (kind == ME_PATH_OTHER)
        return me_error_set(err, ME_ERR_EXISTS, "%s: exists and is not a run directory; expected it free for the "
                            "sweep's run (move it away)", run_dir);
    char path[ME_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.ini", run_dir);
    if (me_file_probe(path) == ME_PATH_ABSENT)
        return me_error_set(err, ME_ERR_EXISTS, "%s: has files but no config.ini, so it is not a run of this sweep; "
                            "expected it empty or absent (move it away)", run_dir);
    me_config *had = new_config(err);
    if (!had) return ME_ERR_NOMEM;
    me_config_defaults(had);
    me_status st = me_config_load(had, path, err);
    if (!st) st = me_config_validate(had, err);
    const char *key = st ? NULL : me_config_first_difference_except(had, cfg, ME_KEY_RUN | ME_KEY_MACHINE);
    if (key) {
        char was[ME_PATH_MAX], now[ME_PATH_MAX];
        st = me_error_set(err, ME_ERR_EXISTS, "%s: trained with %s = %s, the sweep gives %s; expected the sweep's own "
                          "run (move it away, or use another --name)", path, key,
                          me_config_value_string(had, key, was, sizeof was),
                          me_config_value_string(cfg, key, now, sizeof now));
    }
    free(had);
    if (st) return st;
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", run_dir);
    if (me_file_probe(path) == ME_PATH_ABSENT) {
        *state = ME_SWEEP_RESTART;
        return ME_OK;
    }
    if ((st = me_checkpoint_read_step(path, step, err))) return st;
    *state = *step >= cfg->train.steps ? ME_SWEEP_DONE : ME_SWEEP_RESUME;
    return ME_OK;
}

void me_sweep_argv_free(char **argv) {
    for (int i = 0; argv && argv[i]; i++) free(argv[i]);
    free(argv);
}

me_status me_sweep_train_argv(const me_sweep *s, int k, const char *exe, const char *run_dir, me_sweep_state state,
                              int threads, char ***argv, me_error *err) {
    *argv = NULL;
    if (state == ME_SWEEP_DONE) return me_error_set(err, ME_ERR_USAGE, "%s: finished, nothing to run", run_dir);
    char *point[ME_SWEEP_MAX_AXES + 1];
    int n_point = 0;
    if (state != ME_SWEEP_RESUME && (n_point = me_sweep_run_sets(s, k, point)) < 0)
        return me_error_set(err, ME_ERR_NOMEM, "out of memory");
    size_t cap = 8 + 2 * ((size_t)s->n_sets + (size_t)n_point) + 6;
    char **v = calloc(cap, sizeof *v);
    int n = 0, ok = v != NULL;
#define PUSH(expr)                                                                                                     \
    do {                                                                                                               \
        if (ok && !(v[n++] = (expr))) ok = 0;                                                                          \
    } while (0)
    PUSH(strdup(exe));
    PUSH(strdup("train"));
    if (state == ME_SWEEP_RESUME) {
        PUSH(strdup("--resume"));
        PUSH(strdup(run_dir));
    } else {
        PUSH(strdup(s->config));
        for (int i = 0; i < s->n_sets; i++) {
            PUSH(strdup("--set"));
            PUSH(strdup(s->sets[i]));
        }
        for (int i = 0; i < n_point; i++) {
            PUSH(strdup("--set"));
            PUSH(strdup(point[i]));
        }
        PUSH(strdup("--set"));
        PUSH(dup_printf("log.out_dir=%s", run_dir));
    }
    PUSH(strdup("--set"));
    PUSH(dup_printf("train.threads=%d", threads));
    if (state == ME_SWEEP_RESTART) PUSH(strdup("--force"));
#undef PUSH
    for (int i = 0; i < n_point; i++) free(point[i]);
    if (!ok) {
        me_sweep_argv_free(v);
        return me_error_set(err, ME_ERR_NOMEM, "out of memory");
    }
    *argv = v;
    return ME_OK;
}

char *me_sweep_shell_quote(const char *arg) {
    int plain = arg[0] != '\0';
    for (const char *p = arg; *p && plain; p++)
        plain = isalnum((unsigned char)*p) || strchr("_@%+=:,./-", *p);
    if (plain) return strdup(arg);
    size_t n = 3;
    for (const char *p = arg; *p; p++) n += *p == '\'' ? 4 : 1;
    char *q = malloc(n), *o = q;
    if (!q) return NULL;
    *o++ = '\'';
    for (const char *p = arg; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return q;
}

/* ---- sweep.csv ----------------------------------------------------------------------------------------- */

/* A CSV field: as it is, or in double quotes (with "" for ") when it holds ',', '"' or a line break. */
static void csv_field(FILE *f, const char *s, int first) {
    if (!first) fputc(',', f);
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_number(FILE *f, double v) {
    if (isnan(v)) fputc(',', f);
    else fprintf(f, ",%.9g", v);
}

/* The run's train.seed as the CSV shows it. */
static void run_seed(const me_sweep *s, int k, char *buf, size_t cap) {
    int idx[ME_SWEEP_MAX_AXES], seed;
    me_sweep_point(s, k, idx, &seed);
    if (s->seeds > 0) {
        snprintf(buf, cap, "%d", seed);
        return;
    }
    for (int a = 0; a < s->n_axes; a++)
        if (strcmp(s->axes[a].key, "train.seed") == 0) {
            snprintf(buf, cap, "%s", s->axes[a].values[idx[a]]);
            return;
        }
    me_config_value_string(s->base, "train.seed", buf, cap);
}

char *me_sweep_csv_text(const me_sweep *s, const me_sweep_row *rows, int n, me_error *err) {
    /* the LayerNorms: the union over the runs, in the order first seen */
    int n_norms = 0, cap_norms = 0;
    char(*stems)[ME_NAME_MAX] = NULL;
    for (int r = 0; r < n; r++) {
        const me_run_summary *sum = rows[r].sum;
        for (int j = 0; sum && j < sum->n_norms; j++) {
            int seen = 0;
            for (int q = 0; q < n_norms && !seen; q++) seen = strcmp(stems[q], sum->norms[j].stem) == 0;
            if (seen) continue;
            if (n_norms == cap_norms) {
                cap_norms = cap_norms ? 2 * cap_norms : 16;
                void *p = realloc(stems, (size_t)cap_norms * sizeof *stems);
                if (!p) {
                    free(stems);
                    me_error_set(err, ME_ERR_NOMEM, "out of memory for sweep.csv");
                    return NULL;
                }
                stems = p;
            }
            memcpy(stems[n_norms++], sum->norms[j].stem, ME_NAME_MAX);
        }
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        free(stems);
        me_error_set(err, ME_ERR_NOMEM, "out of memory for sweep.csv");
        return NULL;
    }
    csv_field(f, "run", 1);
    for (int a = 0; a < s->n_axes; a++)
        if (strcmp(s->axes[a].key, "train.seed") != 0) csv_field(f, s->axes[a].key, 0);
    fputs(",seed,status,steps,train_loss,valid_loss,best_valid_loss,valid_acc,best_valid_acc,acc99_step,wall_s", f);
    for (int q = 0; q < n_norms; q++) {
        fprintf(f, ",%s.gamma_drift", stems[q]);
        fprintf(f, ",%s.beta_drift", stems[q]);
    }
    fputc('\n', f);
    for (int r = 0; r < n; r++) {
        const me_sweep_row *row = &rows[r];
        int idx[ME_SWEEP_MAX_AXES], seed;
        me_sweep_point(s, row->k, idx, &seed);
        csv_field(f, row->name, 1);
        for (int a = 0; a < s->n_axes; a++)
            if (strcmp(s->axes[a].key, "train.seed") != 0) csv_field(f, s->axes[a].values[idx[a]], 0);
        char sd[32];
        run_seed(s, row->k, sd, sizeof sd);
        csv_field(f, sd, 0);
        csv_field(f, row->status, 0);
        const me_run_summary *sum = row->sum;
        if (sum) {
            fprintf(f, ",%lld", (long long)sum->steps);
            csv_number(f, sum->train_loss);
            csv_number(f, sum->valid_loss);
            csv_number(f, sum->best_valid_loss);
            csv_number(f, sum->valid_acc);
            csv_number(f, sum->best_valid_acc);
            if (sum->acc_target_step >= 0) fprintf(f, ",%lld", (long long)sum->acc_target_step);
            else fputc(',', f);
        } else {
            fputs(",,,,,,,", f);
        }
        csv_number(f, row->wall_s);
        for (int q = 0; q < n_norms; q++) {
            int j = -1;
            for (int t = 0; sum && t < sum->n_norms && j < 0; t++)
                if (strcmp(sum->norms[t].stem, stems[q]) == 0) j = t;
            csv_number(f, j >= 0 ? sum->gamma_drift[j] : NAN);
            csv_number(f, j >= 0 ? sum->beta_drift[j] : NAN);
        }
        fputc('\n', f);
    }
    free(stems);
    if (fclose(f) != 0) {
        free(text);
        me_error_set(err, ME_ERR_NOMEM, "out of memory for sweep.csv");
        return NULL;
    }
    return text;
}

/* Splits one CSV line (RFC 4180 quoting, no line breaks inside fields) in place into fields[cap];
 * returns how many, -1 on a malformed quote. */
static int csv_split(char *line, char **fields, int cap) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == cap) return n;
        char *out = p;
        fields[n++] = out;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p) return -1;
                if (*p == '"') {
                    if (p[1] == '"') {
                        *out++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                *out++ = *p++;
            }
            if (*p && *p != ',') return -1;
        } else {
            while (*p && *p != ',') *out++ = *p++;
        }
        int more = *p == ',';
        *out = '\0';
        if (!more) return n;
        p++;
    }
}

me_status me_sweep_csv_read_wall(const me_sweep *s, const char *path, double *wall, me_error *err) {
    if (me_file_probe(path) == ME_PATH_ABSENT) return ME_OK;
    char *text;
    size_t size;
    me_status st = me_file_read_all(path, "a sweep.csv", &text, &size, err);
    if (st) return st;
    enum { MAX_FIELDS = 4096 };
    char **fields = malloc(MAX_FIELDS * sizeof *fields);
    int n_runs = me_sweep_n_runs(s);
    if (!fields) {
        free(text);
        return me_error_set(err, ME_ERR_NOMEM, "out of memory reading %s", path);
    }
    int col_run = -1, col_wall = -1, lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && !st; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[l - 1] = '\0';
        int nf = csv_split(line, fields, MAX_FIELDS);
        if (nf < 0) {
            st = me_error_set(err, ME_ERR_FORMAT, "%s:%d: unbalanced quotes, expected RFC 4180 CSV", path, lineno);
            break;
        }
        if (lineno == 1) {
            for (int i = 0; i < nf; i++) {
                if (strcmp(fields[i], "run") == 0) col_run = i;
                if (strcmp(fields[i], "wall_s") == 0) col_wall = i;
            }
            if (col_run < 0 || col_wall < 0)
                st = me_error_set(err, ME_ERR_FORMAT, "%s:1: no 'run' and 'wall_s' columns, expected sweep.csv's "
                                  "header", path);
            continue;
        }
        if (nf <= col_run || nf <= col_wall || !fields[col_wall][0]) continue;
        char *end;
        double v = strtod(fields[col_wall], &end);
        if (*end || !(v >= 0) || !isfinite(v)) continue; /* not a time: leave it unknown */
        for (int k = 0; k < n_runs; k++) {
            char name[ME_SWEEP_NAME_MAX + 1];
            if (me_sweep_run_name(s, k, name, sizeof name, NULL) == ME_OK && strcmp(name, fields[col_run]) == 0) {
                wall[k] = v;
                break;
            }
        }
    }
    free(fields);
    free(text);
    return st;
}
