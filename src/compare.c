/* Comparing runs: loading, grouping, each group's figures as mean and min–max over its runs, the text
 * table and JSON. See include/minienc/compare.h; the charts are in compare_plots.c. */
#include "minienc/compare.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "minienc/sweep.h"

#include "file.h"
#include "internal.h"

/* ---- notes and small helpers ---------------------------------------------------------------------------- */

void me_compare_note(me_compare *c, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (int i = 0; i < c->n_notes; i++)
        if (strcmp(c->notes[i], line) == 0) return; /* said once */
    char **n = realloc(c->notes, ((size_t)c->n_notes + 1) * sizeof *n);
    if (!n) return;
    c->notes = n;
    size_t len = strlen(line) + 1;
    if ((n[c->n_notes] = malloc(len))) memcpy(n[c->n_notes++], line, len);
}

/* The name a key goes by in labels: its name within its section. */
static const char *short_key(const char *key) {
    const char *dot = strchr(key, '.');
    return dot ? dot + 1 : key;
}

/* Index of LayerNorm stem in a run's summary, -1 when it has none. */
static int run_norm(const me_compare_run *r, const char *stem) {
    for (int k = 0; k < r->sum.n_norms; k++)
        if (strcmp(r->sum.norms[k].stem, stem) == 0) return k;
    return -1;
}

static void run_free(me_compare_run *r) {
    free(r->cfg);
    me_metrics_free(&r->metrics);
    if (r->has_hist) me_history_free(&r->hist);
    me_run_summary_free(&r->sum);
    me_report_free(&r->rep);
}

void me_compare_free(me_compare *c) {
    for (int i = 0; c->runs && i < c->n_runs; i++) run_free(&c->runs[i]);
    free(c->runs);
    for (int g = 0; c->groups && g < c->n_groups; g++) free(c->groups[g].runs);
    free(c->groups);
    free(c->by);
    free(c->norms);
    for (int i = 0; i < c->n_notes; i++) free(c->notes[i]);
    free(c->notes);
    memset(c, 0, sizeof *c);
}

/* ---- loading -------------------------------------------------------------------------------------------- */

static int has_file(const char *dir, const char *file) {
    char path[2 * ME_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return me_file_probe(path) == ME_PATH_OTHER;
}

/* Adds LayerNorm stems of a run to the union, each new one after the last known stem before it, so that
 * runs of different depths merge into one order across the depth. */
static me_status merge_norms(me_compare *c, const me_run_summary *s, me_error *err) {
    int after = -1; /* position in c->norms of the previous stem of this run */
    for (int k = 0; k < s->n_norms; k++) {
        int at = -1;
        for (int j = 0; j < c->n_norms && at < 0; j++)
            if (strcmp(c->norms[j], s->norms[k].stem) == 0) at = j;
        if (at < 0) {
            void *p = realloc(c->norms, ((size_t)c->n_norms + 1) * sizeof *c->norms);
            if (!p) return me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
            c->norms = p;
            at = after + 1;
            memmove(c->norms[at + 1], c->norms[at], (size_t)(c->n_norms - at) * sizeof *c->norms);
            memcpy(c->norms[at], s->norms[k].stem, ME_NAME_MAX);
            c->n_norms++;
        }
        if (at > after) after = at;
    }
    return ME_OK;
}

static me_status load_run(me_compare *c, const char *dir, me_error *err) {
    char *real = realpath(dir, NULL);
    if (!real) return me_error_set(err, ME_ERR_USAGE, "%s: cannot open: not a run directory", dir);
    for (int i = 0; i < c->n_runs; i++)
        if (strcmp(c->runs[i].dir, real) == 0) {
            free(real);
            return ME_OK; /* given twice */
        }
    me_compare_run *runs = realloc(c->runs, ((size_t)c->n_runs + 1) * sizeof *runs);
    if (!runs) {
        free(real);
        return me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
    }
    c->runs = runs;
    me_compare_run *r = &runs[c->n_runs];
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", real);
    free(real);
    me_report_run_name(dir, r->name, sizeof r->name);
    char path[ME_PATH_MAX + 64];
    me_status st = ME_OK;
    if (!(r->cfg = malloc(sizeof *r->cfg))) return me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
    me_config_defaults(r->cfg);
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    if ((st = me_metrics_read(&r->metrics, path, err))) goto fail;
    snprintf(path, sizeof path, "%s/history.safetensors", dir);
    if (me_file_probe(path) == ME_PATH_OTHER) {
        if ((st = me_history_read(&r->hist, path, err))) goto fail;
        r->has_hist = 1;
    } else {
        me_compare_note(c, "%s: no history.safetensors: left out of the gamma/beta figures", dir);
    }
    snprintf(path, sizeof path, "%s/config.ini", dir);
    if (me_file_probe(path) == ME_PATH_OTHER) st = me_config_load(r->cfg, path, err);
    else if (r->has_hist && r->hist.config) st = me_config_load_string(r->cfg, r->hist.config, path, err);
    else st = me_error_set(err, ME_ERR_USAGE, "%s: no config.ini (and no config in its history), expected a run "
                           "directory written by 'minienc train'", dir);
    if (!st) st = me_config_validate(r->cfg, err);
    if (!st) st = me_run_summary_make(&r->sum, &r->metrics, r->has_hist ? &r->hist : NULL, err);
    if (!st && r->has_hist && r->hist.n_snap > 0) st = me_report_analyze(&r->rep, &r->hist, r->name, 1, c->sigma, err);
    if (!st) st = merge_norms(c, &r->sum, err);
    if (st) goto fail;
    r->group = -1;
    c->n_runs++;
    return ME_OK;
fail:
    run_free(r);
    return st;
}

me_status me_compare_load(me_compare *c, const char *const *paths, int n_paths, double sigma, me_error *err) {
    memset(c, 0, sizeof *c);
    if (!(sigma > 0) || !isfinite(sigma))
        return me_error_set(err, ME_ERR_USAGE, "compare: sigma is %g, expected a finite number above 0", sigma);
    c->sigma = sigma;
    me_status st = ME_OK;
    for (int p = 0; p < n_paths && !st; p++) {
        const char *path = paths[p];
        if (has_file(path, "sweep.ini")) {
            char rec[ME_PATH_MAX + 32];
            snprintf(rec, sizeof rec, "%s/sweep.ini", path);
            me_sweep s;
            st = me_sweep_record_read(&s, rec, err);
            int n = st ? 0 : me_sweep_n_runs(&s), missing = 0;
            for (int k = 0; k < n && !st; k++) {
                char name[ME_SWEEP_NAME_MAX + 1], dir[ME_PATH_MAX + ME_SWEEP_NAME_MAX + 2];
                if ((st = me_sweep_run_name(&s, k, name, sizeof name, err))) break;
                snprintf(dir, sizeof dir, "%s/%s", path, name);
                if (has_file(dir, "metrics.csv")) st = load_run(c, dir, err);
                else missing++;
            }
            if (missing) me_compare_note(c, "%s: %d of its %d runs have not started: left out", path, missing, n);
            me_sweep_free(&s);
        } else if (has_file(path, "metrics.csv")) {
            st = load_run(c, path, err);
        } else {
            st = me_error_set(err, ME_ERR_USAGE, "%s: neither a run directory (metrics.csv) nor a sweep folder "
                              "(sweep.ini), expected what 'minienc train' or 'minienc sweep' writes", path);
        }
    }
    if (!st && c->n_runs == 0)
        st = me_error_set(err, ME_ERR_USAGE, "compare: no run with results in the folders given, expected finished "
                          "or interrupted runs");
    return st;
}

/* ---- groups --------------------------------------------------------------------------------------------- */

/* Whether key takes part in the default grouping: everything but the seed and where and how a run is
 * run. */
static int groups_by_default(const char *key, unsigned flags) {
    return !(flags & (ME_KEY_RUN | ME_KEY_MACHINE)) && strcmp(key, "train.seed") != 0;
}

me_status me_compare_group_by(me_compare *c, const char *const *by, int n_by, me_error *err) {
    for (int g = 0; c->groups && g < c->n_groups; g++) free(c->groups[g].runs);
    free(c->groups);
    c->groups = NULL;
    c->n_groups = 0;
    free(c->by);
    c->by = NULL;
    c->n_by = 0;
    if (n_by > ME_COMPARE_MAX_BY)
        return me_error_set(err, ME_ERR_USAGE, "--by: %d keys, expected at most %d", n_by, ME_COMPARE_MAX_BY);
    /* the keys that decide */
    const char *keys[128];
    int n_keys = 0;
    if (n_by > 0) {
        for (int i = 0; i < n_by; i++) {
            unsigned flags;
            int found = 0;
            const char *k;
            for (int j = 0; (k = me_config_key_at(j, &flags)) && !found; j++) found = strcmp(k, by[i]) == 0;
            if (!found) {
                /* the config's own message names the nearest known key */
                me_config probe;
                me_config_defaults(&probe);
                char text[160];
                snprintf(text, sizeof text, "%s=0", by[i]);
                me_error e;
                me_config_set(&probe, text, &e);
                const char *msg = strstr(e.msg, ": ");
                return me_error_set(err, ME_ERR_USAGE, "--by %s: %s", by[i], msg ? msg + 2 : e.msg);
            }
            keys[n_keys++] = by[i];
        }
    } else {
        unsigned flags;
        const char *k;
        for (int j = 0; (k = me_config_key_at(j, &flags)) && n_keys < 128; j++)
            if (groups_by_default(k, flags)) keys[n_keys++] = k;
    }
    /* runs into groups, in the order of their first run */
    c->groups = calloc((size_t)c->n_runs + 1, sizeof *c->groups);
    if (!c->groups) return me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
    for (int i = 0; i < c->n_runs; i++) {
        int g = 0;
        for (; g < c->n_groups; g++) {
            const me_compare_run *first = &c->runs[c->groups[g].runs[0]];
            int same = 1;
            for (int k = 0; k < n_keys && same; k++) {
                char a[ME_PATH_MAX], b[ME_PATH_MAX];
                same = strcmp(me_config_value_string(first->cfg, keys[k], a, sizeof a),
                              me_config_value_string(c->runs[i].cfg, keys[k], b, sizeof b)) == 0;
            }
            if (same) break;
        }
        if (g == c->n_groups) {
            if (!(c->groups[g].runs = malloc((size_t)c->n_runs * sizeof(int))))
                return me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
            c->n_groups++;
        }
        c->groups[g].runs[c->groups[g].n++] = i;
        c->runs[i].group = g;
    }
    /* the keys whose values differ between groups name them */
    c->by = calloc((size_t)n_keys + 1, sizeof *c->by);
    if (!c->by) return me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
    for (int k = 0; k < n_keys; k++) {
        int differs = 0;
        char a[ME_PATH_MAX], b[ME_PATH_MAX];
        me_config_value_string(c->runs[c->groups[0].runs[0]].cfg, keys[k], a, sizeof a);
        for (int g = 1; g < c->n_groups && !differs; g++)
            differs = strcmp(a, me_config_value_string(c->runs[c->groups[g].runs[0]].cfg, keys[k], b, sizeof b)) != 0;
        if (differs || n_by > 0) snprintf(c->by[c->n_by++], sizeof c->by[0], "%s", keys[k]);
    }
    for (int g = 0; g < c->n_groups; g++) {
        me_compare_group *G = &c->groups[g];
        const me_compare_run *first = &c->runs[G->runs[0]];
        size_t len = 0;
        G->label[0] = '\0';
        for (int k = 0; k < c->n_by && len < sizeof G->label; k++) {
            char v[ME_PATH_MAX];
            me_config_value_string(first->cfg, c->by[k], v, sizeof v);
            len += (size_t)snprintf(G->label + len, sizeof G->label - len, "%s%s=%s", k ? ", " : "",
                                    short_key(c->by[k]), v);
        }
        if (c->n_by == 0) {
            if (G->n == 1) snprintf(G->label, sizeof G->label, "%s", first->name);
            else snprintf(G->label, sizeof G->label, "all %d runs", G->n);
        }
    }
    return ME_OK;
}

/* ---- statistics ------------------------------------------------------------------------------------------ */

static me_compare_stat stat_of(const double *v, int n) {
    me_compare_stat s = {0, NAN, NAN, NAN, NAN};
    double sum = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(v[i])) continue;
        if (s.n == 0 || v[i] < s.lo) s.lo = v[i];
        if (s.n == 0 || v[i] > s.hi) s.hi = v[i];
        sum += v[i];
        s.n++;
    }
    if (s.n == 0) return s;
    s.mean = sum / s.n;
    double ss = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) ss += (v[i] - s.mean) * (v[i] - s.mean);
    s.sd = s.n > 1 ? sqrt(ss / (s.n - 1)) : 0.0;
    return s;
}

/* One number per run of group g (NaN: none). */
typedef double (*run_value)(const me_compare_run *r, const void *arg);

static me_compare_stat group_stat(const me_compare *c, int g, run_value f, const void *arg) {
    const me_compare_group *G = &c->groups[g];
    double v[4096];
    int n = G->n < 4096 ? G->n : 4096;
    for (int i = 0; i < n; i++) v[i] = f(&c->runs[G->runs[i]], arg);
    return stat_of(v, n);
}

static double v_valid_acc(const me_compare_run *r, const void *a) { (void)a; return r->sum.valid_acc; }
static double v_valid_loss(const me_compare_run *r, const void *a) { (void)a; return r->sum.valid_loss; }
static double v_train_loss(const me_compare_run *r, const void *a) { (void)a; return r->sum.train_loss; }
static double v_acc_step(const me_compare_run *r, const void *a) {
    (void)a;
    return r->sum.acc_target_step >= 0 ? (double)r->sum.acc_target_step : NAN;
}

typedef struct {
    const char *norm;
    int gamma;
} drift_arg;

static double v_drift(const me_compare_run *r, const void *a) {
    const drift_arg *d = a;
    int k = run_norm(r, d->norm);
    if (k < 0) return NAN;
    return d->gamma ? r->sum.gamma_drift[k] : r->sum.beta_drift[k];
}

me_compare_stat me_compare_final_drift(const me_compare *c, int g, const char *norm, int gamma) {
    drift_arg a = {norm, gamma};
    me_compare_stat s = group_stat(c, g, v_drift, &a);
    if (s.n != c->groups[g].n) { /* defined for every run of the group, or not at all */
        me_compare_stat none = {0, NAN, NAN, NAN, NAN};
        return none;
    }
    return s;
}

/* ---- curves ------------------------------------------------------------------------------------------ */

void me_compare_series_free(me_compare_series *s) {
    free(s->x);
    memset(s, 0, sizeof *s);
}

/* Aggregates k runs' (x, y) lists (x ascending) at the x values all of them have: mean and min–max of
 * the finite y there. */
static me_status aggregate(int k, const double *const *xs, const double *const *ys, const size_t *ns,
                           me_compare_series *out, me_error *err) {
    memset(out, 0, sizeof *out);
    size_t cap = ns[0];
    for (int r = 1; r < k; r++)
        if (ns[r] < cap) cap = ns[r];
    double *block = malloc(sizeof(double) * (4 * cap + 1));
    size_t *at = calloc((size_t)k, sizeof *at);
    if (!block || !at) {
        free(block);
        free(at);
        return me_error_set(err, ME_ERR_NOMEM, "compare: out of memory for a curve");
    }
    out->x = block;
    out->mean = block + cap;
    out->lo = block + 2 * cap;
    out->hi = block + 3 * cap;
    for (size_t i = 0; i < ns[0] && out->n < cap; i++) {
        double x = xs[0][i];
        int all = 1;
        for (int r = 1; r < k && all; r++) {
            while (at[r] < ns[r] && xs[r][at[r]] < x) at[r]++;
            all = at[r] < ns[r] && xs[r][at[r]] == x;
        }
        if (!all) continue;
        double sum = 0, lo = INFINITY, hi = -INFINITY;
        int cnt = 0;
        for (int r = 0; r < k; r++) {
            double y = ys[r][r == 0 ? i : at[r]];
            if (!isfinite(y)) continue;
            sum += y;
            lo = fmin(lo, y);
            hi = fmax(hi, y);
            cnt++;
        }
        out->x[out->n] = x;
        out->mean[out->n] = cnt ? sum / cnt : NAN;
        out->lo[out->n] = cnt ? lo : NAN;
        out->hi[out->n] = cnt ? hi : NAN;
        out->n++;
    }
    out->runs = k;
    free(at);
    return ME_OK;
}

me_status me_compare_curve(const me_compare *c, int g, me_compare_curve_kind kind, int smooth, me_compare_series *out,
                           me_error *err) {
    const me_compare_group *G = &c->groups[g];
    int k = G->n;
    memset(out, 0, sizeof *out);
    if (k < 1) return ME_OK;
    const double **xs = calloc((size_t)k, sizeof *xs), **ys = calloc((size_t)k, sizeof *ys);
    size_t *ns = calloc((size_t)k, sizeof *ns);
    double **own = calloc((size_t)k, sizeof *own);
    me_status st = ME_OK;
    if (!xs || !ys || !ns || !own) st = me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
    for (int i = 0; i < k && !st; i++) {
        const me_metrics *m = &c->runs[G->runs[i]].metrics;
        if (!(own[i] = malloc(sizeof(double) * (2 * m->n + 1)))) {
            st = me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
            break;
        }
        double *x = own[i], *y = own[i] + m->n;
        size_t n = 0;
        if (kind == ME_COMPARE_TRAIN_LOSS) {
            me_moving_average(m->loss, m->n, smooth > 1 ? (size_t)smooth / 2 : 0, y);
            memcpy(x, m->step, m->n * sizeof *x);
            n = m->n;
        } else {
            const double *col = kind == ME_COMPARE_VALID_ACC ? m->valid_acc : m->valid_loss;
            for (size_t j = 0; j < m->n; j++)
                if (!isnan(col[j])) x[n] = m->step[j], y[n++] = col[j];
        }
        xs[i] = x;
        ys[i] = y;
        ns[i] = n;
    }
    if (!st) st = aggregate(k, xs, ys, ns, out, err);
    for (int i = 0; own && i < k; i++) free(own[i]);
    free(own);
    free(xs);
    free(ys);
    free(ns);
    return st;
}

/* The statistic of one snapshot of a tensor. */
static double norm_stat(const me_history *h, int i, size_t s, me_compare_norm_stat stat) {
    const float *x = me_history_at(h, i, s);
    double mean, sd, m = 0;
    switch (stat) {
    case ME_COMPARE_GAMMA_MEAN:
    case ME_COMPARE_BETA_MEAN: me_mean_std(x, h->dim[i], &mean, &sd); return mean;
    case ME_COMPARE_GAMMA_MAXDEV:
        for (size_t d = 0; d < h->dim[i]; d++) m = fmax(m, fabs((double)x[d] - 1.0));
        return m;
    case ME_COMPARE_BETA_MAXABS:
        for (size_t d = 0; d < h->dim[i]; d++) m = fmax(m, fabs((double)x[d]));
        return m;
    case ME_COMPARE_GAMMA_DRIFT:
    case ME_COMPARE_BETA_DRIFT: return me_history_l2_from_first(h, i, s);
    }
    return NAN;
}

me_status me_compare_norm_curve(const me_compare *c, int g, const char *norm, me_compare_norm_stat stat,
                                me_compare_series *out, me_error *err) {
    memset(out, 0, sizeof *out);
    const me_compare_group *G = &c->groups[g];
    int k = G->n, gamma = stat <= ME_COMPARE_GAMMA_DRIFT;
    if (k < 1) return ME_OK;
    for (int i = 0; i < k; i++) { /* every run of the group must have it */
        const me_compare_run *r = &c->runs[G->runs[i]];
        int j = r->has_hist ? run_norm(r, norm) : -1;
        if (j < 0 || (gamma ? r->sum.norms[j].gamma : r->sum.norms[j].beta) < 0) return ME_OK;
    }
    const double **xs = calloc((size_t)k, sizeof *xs), **ys = calloc((size_t)k, sizeof *ys);
    size_t *ns = calloc((size_t)k, sizeof *ns);
    double **own = calloc((size_t)k, sizeof *own);
    me_status st = ME_OK;
    if (!xs || !ys || !ns || !own) st = me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
    for (int i = 0; i < k && !st; i++) {
        const me_compare_run *r = &c->runs[G->runs[i]];
        const me_history *h = &r->hist;
        int j = run_norm(r, norm), t = gamma ? r->sum.norms[j].gamma : r->sum.norms[j].beta;
        if (!(own[i] = malloc(sizeof(double) * (2 * h->n_snap + 1)))) {
            st = me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
            break;
        }
        double *x = own[i], *y = own[i] + h->n_snap;
        for (size_t s = 0; s < h->n_snap; s++) {
            x[s] = (double)h->steps[s];
            y[s] = norm_stat(h, t, s, stat);
        }
        xs[i] = x;
        ys[i] = y;
        ns[i] = h->n_snap;
    }
    if (!st) st = aggregate(k, xs, ys, ns, out, err);
    for (int i = 0; own && i < k; i++) free(own[i]);
    free(own);
    free(xs);
    free(ys);
    free(ns);
    return st;
}

/* ---- outliers -------------------------------------------------------------------------------------------- */

/* The outliers of a run's γ at LayerNorm stem (NULL, 0 when it has none). */
static const me_report_tensor *run_gamma(const me_compare_run *r, const char *stem) {
    int j = r->has_hist ? run_norm(r, stem) : -1;
    if (j < 0 || r->sum.norms[j].gamma < 0 || r->sum.norms[j].gamma >= r->rep.n) return NULL;
    return &r->rep.t[r->sum.norms[j].gamma];
}

me_status me_compare_outlier_map(const me_compare *c, int g, float **values, int **rows_out, int *rows, int *dims,
                                 me_error *err) {
    *values = NULL;
    *rows_out = NULL;
    *rows = *dims = 0;
    const me_compare_group *G = &c->groups[g];
    int d = c->runs[G->runs[0]].cfg->model.d_model;
    for (int i = 0; i < G->n; i++)
        if (!c->runs[G->runs[i]].has_hist || c->runs[G->runs[i]].cfg->model.d_model != d) return ME_OK;
    int *which = malloc(sizeof(int) * ((size_t)c->n_norms + 1));
    if (!which) return me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
    int n = 0;
    for (int p = 0; p < c->n_norms; p++) {
        int all = 1;
        for (int i = 0; i < G->n && all; i++) {
            const me_report_tensor *t = run_gamma(&c->runs[G->runs[i]], c->norms[p]);
            all = t && t->dim == (size_t)d;
        }
        if (all) which[n++] = p;
    }
    float *v = n ? calloc((size_t)n * (size_t)d, sizeof *v) : NULL;
    if (n && !v) {
        free(which);
        return me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
    }
    for (int row = 0; row < n; row++)
        for (int i = 0; i < G->n; i++) {
            const me_report_tensor *t = run_gamma(&c->runs[G->runs[i]], c->norms[which[row]]);
            for (size_t j = 0; j < t->n_outliers; j++) v[(size_t)row * d + t->outliers[j].dim] += 1.0f / (float)G->n;
        }
    if (!n) {
        free(which);
        which = NULL;
    }
    *values = v;
    *rows_out = which;
    *rows = n;
    *dims = n ? d : 0;
    return ME_OK;
}

/* Per dimension, in how many of group g's runs it is an outlier of stem's γ (counts[d_max]). */
static int outlier_counts(const me_compare *c, int g, const char *stem, int *counts, int d_max) {
    const me_compare_group *G = &c->groups[g];
    memset(counts, 0, sizeof(int) * (size_t)d_max);
    int any = 0;
    for (int i = 0; i < G->n; i++) {
        const me_report_tensor *t = run_gamma(&c->runs[G->runs[i]], stem);
        for (size_t j = 0; t && j < t->n_outliers; j++)
            if (t->outliers[j].dim < (size_t)d_max) counts[t->outliers[j].dim]++, any = 1;
    }
    return any;
}

/* Per dimension, in how many of group g's runs it is an outlier in two or more LayerNorms. */
static int shared_counts(const me_compare *c, int g, int *counts, int d_max) {
    const me_compare_group *G = &c->groups[g];
    memset(counts, 0, sizeof(int) * (size_t)d_max);
    int any = 0;
    for (int i = 0; i < G->n; i++) {
        const me_report *rep = &c->runs[G->runs[i]].rep;
        for (int k = 0; k < rep->n_shared; k++)
            if (rep->shared[k].dim < (size_t)d_max) counts[rep->shared[k].dim]++, any = 1;
    }
    return any;
}

static int max_dim(const me_compare *c) {
    int d = 1;
    for (int i = 0; i < c->n_runs; i++)
        for (int t = 0; t < c->runs[i].rep.n; t++)
            if ((int)c->runs[i].rep.t[t].dim > d) d = (int)c->runs[i].rep.t[t].dim;
    return d;
}

/* ---- the table --------------------------------------------------------------------------------------- */

static void fmt_stat(char *buf, size_t cap, me_compare_stat s, double scale, const char *unit, int decimals) {
    if (s.n == 0) snprintf(buf, cap, "-");
    else if (s.n == 1) snprintf(buf, cap, "%.*f%s", decimals, s.mean * scale, unit);
    else snprintf(buf, cap, "%.*f%s ± %.*f%s", decimals, s.mean * scale, unit, decimals, s.sd * scale, unit);
}

/* s padded with spaces to width columns, counting each UTF-8 character ("±") as one. */
static void put_padded(FILE *f, const char *s, int width) {
    int cols = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) cols += (*p & 0xC0) != 0x80;
    fputs(s, f);
    for (; cols < width; cols++) fputc(' ', f);
}

/* The same with three significant digits (losses span decades). */
static void fmt_stat_g(char *buf, size_t cap, me_compare_stat s) {
    if (s.n == 0) snprintf(buf, cap, "-");
    else if (s.n == 1) snprintf(buf, cap, "%.3g", s.mean);
    else snprintf(buf, cap, "%.3g ± %.2g", s.mean, s.sd);
}

me_status me_compare_print(const me_compare *c, FILE *f, me_error *err) {
    int dmax = max_dim(c);
    int *counts = malloc(sizeof(int) * (size_t)dmax);
    if (!counts) return me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
    fprintf(f, "%d run%s in %d group%s", c->n_runs, c->n_runs == 1 ? "" : "s", c->n_groups, c->n_groups == 1 ? "" : "s");
    if (c->n_by) {
        fprintf(f, " by ");
        for (int k = 0; k < c->n_by; k++) fprintf(f, "%s%s", k ? ", " : "", c->by[k]);
    }
    fprintf(f, "; mean ± sample std over each group's runs (charts: mean line, min-max band)\n");
    for (int g = 0; g < c->n_groups; g++) {
        const me_compare_group *G = &c->groups[g];
        fprintf(f, "\ngroup %d: %s (%d run%s:", g + 1, G->label, G->n, G->n == 1 ? "" : "s");
        for (int i = 0; i < G->n; i++) fprintf(f, "%s %s", i ? "," : "", c->runs[G->runs[i]].name);
        fprintf(f, ")\n");
        char a[96], b[96];
        fmt_stat(a, sizeof a, group_stat(c, g, v_valid_acc, NULL), 100, "%", 2);
        fmt_stat_g(b, sizeof b, group_stat(c, g, v_valid_loss, NULL));
        fprintf(f, "  final validation accuracy  %s   loss %s\n", a, b);
        me_compare_stat reached = group_stat(c, g, v_acc_step, NULL);
        fmt_stat(a, sizeof a, reached, 1, "", 0);
        fprintf(f, "  steps to %.0f%% accuracy      %s (%d of %d runs got there)\n", 100 * ME_REPORT_ACC_TARGET,
                reached.n ? a : "never", reached.n, G->n);
        fmt_stat_g(a, sizeof a, group_stat(c, g, v_train_loss, NULL));
        fprintf(f, "  final training loss        %s\n", a);
        int header = 0;
        for (int p = 0; p < c->n_norms; p++) {
            me_compare_stat sg = me_compare_final_drift(c, g, c->norms[p], 1), sb = me_compare_final_drift(c, g, c->norms[p], 0);
            if (sg.n == 0 && sb.n == 0) continue;
            if (!header++) fprintf(f, "  L2 drift from the initial values:   %-20s %s\n", "gamma", "beta");
            fmt_stat(a, sizeof a, sg, 1, "", 4);
            fmt_stat(b, sizeof b, sb, 1, "", 4);
            fprintf(f, "    %-32s ", c->norms[p]);
            put_padded(f, a, 20);
            fprintf(f, " %s\n", b);
        }
        int any = 0;
        for (int p = 0; p < c->n_norms; p++) {
            if (!outlier_counts(c, g, c->norms[p], counts, dmax)) continue;
            if (!any++) fprintf(f, "  outlier gamma dimensions (> %g std at the end; in how many runs):\n", c->sigma);
            fprintf(f, "    %-32s", c->norms[p]);
            int first = 1;
            for (int d = 0; d < dmax; d++)
                if (counts[d]) fprintf(f, "%s dim %d (%d/%d)", first ? "" : ",", d, counts[d], G->n), first = 0;
            fprintf(f, "\n");
        }
        if (!any) fprintf(f, "  outlier gamma dimensions (> %g std at the end): none\n", c->sigma);
        if (shared_counts(c, g, counts, dmax)) {
            fprintf(f, "  outliers in two or more LayerNorms:");
            int first = 1;
            for (int d = 0; d < dmax; d++)
                if (counts[d]) fprintf(f, "%s dim %d (%d/%d runs)", first ? "" : ",", d, counts[d], G->n), first = 0;
            fprintf(f, "\n");
        }
    }
    if (c->n_notes) fprintf(f, "\nleft out:\n");
    for (int i = 0; i < c->n_notes; i++) fprintf(f, "  %s\n", c->notes[i]);
    free(counts);
    if (ferror(f)) return me_error_set(err, ME_ERR_IO, "compare: write error on the output");
    return ME_OK;
}

/* ---- JSON ---------------------------------------------------------------------------------------------- */

static cJSON *stat_json(me_compare_stat s) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "n", s.n);
    const char *names[4] = {"mean", "std", "min", "max"};
    double v[4] = {s.mean, s.sd, s.lo, s.hi};
    for (int i = 0; i < 4; i++) {
        if (s.n > 0 && isfinite(v[i])) cJSON_AddNumberToObject(o, names[i], v[i]);
        else cJSON_AddNullToObject(o, names[i]);
    }
    return o;
}

static int add_dims(cJSON *arr, const int *counts, int dmax) {
    for (int d = 0; d < dmax; d++) {
        if (!counts[d]) continue;
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            return 0;
        }
        cJSON_AddNumberToObject(o, "dim", d);
        cJSON_AddNumberToObject(o, "runs", counts[d]);
    }
    return 1;
}

cJSON *me_compare_json(const me_compare *c) {
    int dmax = max_dim(c);
    int *counts = malloc(sizeof(int) * (size_t)dmax);
    cJSON *root = cJSON_CreateObject();
    int ok = root && counts;
    if (ok) {
        cJSON_AddNumberToObject(root, "sigma", c->sigma);
        cJSON_AddStringToObject(root, "band", "min-max");
        cJSON_AddStringToObject(root, "spread", "sample std");
        cJSON *by = cJSON_AddArrayToObject(root, "by");
        for (int k = 0; by && k < c->n_by; k++) cJSON_AddItemToArray(by, cJSON_CreateString(c->by[k]));
        ok = by != NULL;
    }
    cJSON *groups = ok ? cJSON_AddArrayToObject(root, "groups") : NULL;
    ok = ok && groups;
    for (int g = 0; ok && g < c->n_groups; g++) {
        const me_compare_group *G = &c->groups[g];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(groups, o)) {
            cJSON_Delete(o);
            ok = 0;
            break;
        }
        cJSON_AddStringToObject(o, "label", G->label);
        cJSON *values = cJSON_AddObjectToObject(o, "values");
        for (int k = 0; values && k < c->n_by; k++) {
            char v[ME_PATH_MAX];
            cJSON_AddStringToObject(values, c->by[k], me_config_value_string(c->runs[G->runs[0]].cfg, c->by[k], v, sizeof v));
        }
        cJSON *runs = cJSON_AddArrayToObject(o, "runs");
        for (int i = 0; runs && i < G->n; i++) cJSON_AddItemToArray(runs, cJSON_CreateString(c->runs[G->runs[i]].name));
        cJSON_AddItemToObject(o, "final_valid_acc", stat_json(group_stat(c, g, v_valid_acc, NULL)));
        cJSON_AddItemToObject(o, "final_valid_loss", stat_json(group_stat(c, g, v_valid_loss, NULL)));
        cJSON_AddItemToObject(o, "final_train_loss", stat_json(group_stat(c, g, v_train_loss, NULL)));
        me_compare_stat reached = group_stat(c, g, v_acc_step, NULL);
        cJSON *acc = stat_json(reached);
        if (acc) {
            cJSON_AddNumberToObject(acc, "reached", reached.n);
            cJSON_AddNumberToObject(acc, "of", G->n);
        }
        cJSON_AddItemToObject(o, "acc99_step", acc);
        cJSON *drift = cJSON_AddArrayToObject(o, "drift");
        for (int p = 0; drift && p < c->n_norms; p++) {
            me_compare_stat sg = me_compare_final_drift(c, g, c->norms[p], 1), sb = me_compare_final_drift(c, g, c->norms[p], 0);
            if (sg.n == 0 && sb.n == 0) continue;
            cJSON *d = cJSON_CreateObject();
            if (!d || !cJSON_AddItemToArray(drift, d)) {
                cJSON_Delete(d);
                ok = 0;
                break;
            }
            cJSON_AddStringToObject(d, "layernorm", c->norms[p]);
            cJSON_AddItemToObject(d, "gamma", stat_json(sg));
            cJSON_AddItemToObject(d, "beta", stat_json(sb));
        }
        cJSON *outl = cJSON_AddArrayToObject(o, "outliers");
        for (int p = 0; ok && outl && p < c->n_norms; p++) {
            if (!outlier_counts(c, g, c->norms[p], counts, dmax)) continue;
            cJSON *d = cJSON_CreateObject();
            if (!d || !cJSON_AddItemToArray(outl, d)) {
                cJSON_Delete(d);
                ok = 0;
                break;
            }
            cJSON_AddStringToObject(d, "layernorm", c->norms[p]);
            cJSON *dims = cJSON_AddArrayToObject(d, "dims");
            ok = dims && add_dims(dims, counts, dmax);
        }
        cJSON *shared = cJSON_AddArrayToObject(o, "shared_outliers");
        if (ok && shared) {
            shared_counts(c, g, counts, dmax);
            ok = add_dims(shared, counts, dmax);
        }
        ok = ok && values && runs && drift && outl && shared;
    }
    cJSON *notes = ok ? cJSON_AddArrayToObject(root, "notes") : NULL;
    for (int i = 0; notes && i < c->n_notes; i++) cJSON_AddItemToArray(notes, cJSON_CreateString(c->notes[i]));
    free(counts);
    if (!ok || !notes) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}
