/* Run reports: what the inspect analysis (report_inspect.c) and the charts (report_plots.c) share: the
 * run directory. */
#include "minienc/report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report_internal.h"

char *report_join(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, file);
    return s;
}

me_status report_run_file(const char *run_dir, const char *file, char **path, me_error *err) {
    struct stat sb;
    *path = NULL;
    if (stat(run_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return me_error_set(err, ME_ERR_USAGE, "%s: not a directory, expected a run directory written by 'minienc train'",
                            run_dir);
    char *p = report_join(run_dir, file);
    if (!p) return me_error_set(err, ME_ERR_NOMEM, "out of memory");
    if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        me_error_set(err, ME_ERR_USAGE, "%s: missing, expected a run directory written by 'minienc train'", p);
        free(p);
        return ME_ERR_USAGE;
    }
    *path = p;
    return ME_OK;
}

void me_report_run_name(const char *run_dir, char *buf, size_t cap) {
    if (!cap) return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", run_dir && run_dir[0] ? run_dir : ".");
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/') tmp[--n] = '\0';
    const char *base = strrchr(tmp, '/');
    base = base && base[1] ? base + 1 : tmp;
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        char *real = realpath(tmp, NULL);
        if (real) {
            const char *rb = strrchr(real, '/');
            snprintf(buf, cap, "%s", rb && rb[1] ? rb + 1 : real);
            free(real);
            return;
        }
    }
    snprintf(buf, cap, "%s", base);
}

/* ---- a run's results ---------------------------------------------------------------------------- */

void me_run_summary_free(me_run_summary *s) {
    free(s->norms);
    free(s->gamma_drift);
    free(s->beta_drift);
    memset(s, 0, sizeof *s);
}

me_status me_run_summary_make(me_run_summary *s, const me_metrics *m, const me_history *h, me_error *err) {
    memset(s, 0, sizeof *s);
    s->train_loss = s->valid_loss = s->valid_acc = s->best_valid_loss = s->best_valid_acc = NAN;
    s->acc_target_step = -1;
    if (m->n > 0) {
        s->steps = (int64_t)m->step[m->n - 1];
        s->train_loss = m->loss[m->n - 1];
    }
    for (size_t i = 0; i < m->n; i++) {
        if (isnan(m->valid_acc[i]) && isnan(m->valid_loss[i])) continue; /* no evaluation at this step */
        s->valid_loss = m->valid_loss[i];
        s->valid_acc = m->valid_acc[i];
        if (!(s->best_valid_loss <= m->valid_loss[i])) s->best_valid_loss = m->valid_loss[i];
        if (!(s->best_valid_acc >= m->valid_acc[i])) s->best_valid_acc = m->valid_acc[i];
        if (s->acc_target_step < 0 && m->valid_acc[i] >= ME_REPORT_ACC_TARGET) s->acc_target_step = (int64_t)m->step[i];
    }
    if (!h || h->n_snap == 0) return ME_OK;
    s->norms = calloc((size_t)h->n + 1, sizeof *s->norms);
    s->gamma_drift = calloc((size_t)h->n + 1, sizeof *s->gamma_drift);
    s->beta_drift = calloc((size_t)h->n + 1, sizeof *s->beta_drift);
    if (!s->norms || !s->gamma_drift || !s->beta_drift) {
        me_run_summary_free(s);
        return me_error_set(err, ME_ERR_NOMEM, "out of memory summarising a run");
    }
    s->n_norms = me_history_norms(h, s->norms);
    for (int k = 0; k < s->n_norms; k++) {
        int g = s->norms[k].gamma, b = s->norms[k].beta;
        s->gamma_drift[k] = g >= 0 ? me_history_l2_from_first(h, g, h->n_snap - 1) : NAN;
        s->beta_drift[k] = b >= 0 ? me_history_l2_from_first(h, b, h->n_snap - 1) : NAN;
    }
    return ME_OK;
}

me_status me_run_summary_read(me_run_summary *s, const char *run_dir, me_error *err) {
    memset(s, 0, sizeof *s);
    char *path = NULL;
    me_status st = report_run_file(run_dir, "metrics.csv", &path, err);
    if (st) return st;
    me_metrics m;
    st = me_metrics_read(&m, path, err);
    free(path);
    if (st) return st;
    me_history h;
    int have_h = 0;
    path = report_join(run_dir, "history.safetensors");
    struct stat sb;
    if (!path) st = me_error_set(err, ME_ERR_NOMEM, "out of memory");
    else if (stat(path, &sb) == 0) {
        st = me_history_read(&h, path, err);
        have_h = st == ME_OK;
    }
    if (!st) st = me_run_summary_make(s, &m, have_h ? &h : NULL, err);
    if (have_h) me_history_free(&h);
    free(path);
    me_metrics_free(&m);
    return st;
}
