/* The inspect analysis of a run's γ/β history, as a text table or JSON. */
#include "minienc/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "report_internal.h"

static void fastest_change(const me_history *h, int i, size_t d, me_report_dim *o) {
    o->fastest_from = o->fastest_step = -1;
    o->fastest_rate = 0;
    for (size_t s = 1; s < h->n_snap; s++) {
        double dv = fabs((double)me_history_at(h, i, s)[d] - me_history_at(h, i, s - 1)[d]);
        double rate = dv / (double)(h->steps[s] - h->steps[s - 1]);
        if (o->fastest_step < 0 || rate > o->fastest_rate) {
            o->fastest_rate = rate;
            o->fastest_from = h->steps[s - 1];
            o->fastest_step = h->steps[s];
        }
    }
}

static void fill_dim(const me_history *h, int i, size_t d, me_report_dim *o) {
    o->dim = d;
    o->start = me_history_at(h, i, 0)[d];
    o->end = me_history_at(h, i, h->n_snap - 1)[d];
    fastest_change(h, i, d, o);
}

void report_top_moved(const float *first, const float *last, size_t dim, size_t k, size_t *idx) {
    size_t n = 0;
    for (size_t d = 0; d < dim; d++) {
        double c = fabs((double)last[d] - first[d]);
        if (n == k && !(c > fabs((double)last[idx[k - 1]] - first[idx[k - 1]]))) continue;
        size_t pos = n < k ? n++ : k - 1;
        while (pos > 0 && c > fabs((double)last[idx[pos - 1]] - first[idx[pos - 1]])) {
            idx[pos] = idx[pos - 1];
            pos--;
        }
        idx[pos] = d;
    }
}

void me_report_free(me_report *r) {
    for (int i = 0; r->t && i < r->n; i++) {
        free(r->t[i].top);
        free(r->t[i].off);
        free(r->t[i].outliers);
    }
    free(r->t);
    for (int i = 0; r->shared && i < r->n_shared; i++) free(r->shared[i].tensors);
    free(r->shared);
    memset(r, 0, sizeof *r);
}

/* Beyond sigma standard deviations from the mean (never when all values are equal). */
static int is_outlier(double v, double mean, double sd, double sigma) { return sd > 0 && fabs(v - mean) > sigma * sd; }

me_status me_report_outliers(const me_history *h, int i, double sigma, me_report_outlier **out, size_t *n,
                             me_error *err) {
    *out = NULL;
    *n = 0;
    size_t S = h->n_snap, dim = h->dim[i];
    if (S == 0) return ME_OK;
    double *mean = malloc(2 * S * sizeof *mean);
    if (!mean) return me_error_set(err, ME_ERR_NOMEM, "inspect: out of memory");
    double *sd = mean + S;
    for (size_t s = 0; s < S; s++) me_mean_std(me_history_at(h, i, s), dim, &mean[s], &sd[s]);
    const float *last = me_history_at(h, i, S - 1);
    size_t count = 0;
    for (size_t d = 0; d < dim; d++) count += is_outlier(last[d], mean[S - 1], sd[S - 1], sigma);
    if (count) {
        me_report_outlier *o = calloc(count, sizeof *o);
        if (!o) {
            free(mean);
            return me_error_set(err, ME_ERR_NOMEM, "inspect: out of memory");
        }
        size_t k = 0;
        for (size_t d = 0; d < dim; d++) {
            if (!is_outlier(last[d], mean[S - 1], sd[S - 1], sigma)) continue;
            o[k].dim = d;
            o[k].value = last[d];
            o[k].z = (last[d] - mean[S - 1]) / sd[S - 1];
            size_t s = 0;
            while (!is_outlier(me_history_at(h, i, s)[d], mean[s], sd[s], sigma)) s++; /* ends at S - 1 at the latest */
            o[k++].first_step = h->steps[s];
        }
        *out = o;
        *n = count;
    }
    free(mean);
    return ME_OK;
}

/* Dimensions that are outliers in two or more γ tensors of the same size, ascending dim. */
static me_status find_shared(me_report *r, me_error *err) {
    for (int a = 0; a < r->n; a++) {
        const me_report_tensor *ta = &r->t[a];
        if (!ta->is_gamma) continue;
        int first_of_size = 1;
        for (int b = 0; b < a && first_of_size; b++) first_of_size = !(r->t[b].is_gamma && r->t[b].dim == ta->dim);
        if (!first_of_size) continue;
        /* every γ tensor of this size, by dimension */
        for (size_t d = 0; d < ta->dim; d++) {
            int n = 0;
            for (int b = 0; b < r->n; b++) {
                const me_report_tensor *tb = &r->t[b];
                if (!tb->is_gamma || tb->dim != ta->dim) continue;
                for (size_t j = 0; j < tb->n_outliers; j++) n += tb->outliers[j].dim == d;
            }
            if (n < 2) continue;
            me_report_shared *sh = realloc(r->shared, (size_t)(r->n_shared + 1) * sizeof *sh);
            if (!sh) return me_error_set(err, ME_ERR_NOMEM, "inspect: out of memory");
            r->shared = sh;
            sh = &r->shared[r->n_shared];
            sh->dim = d;
            sh->n = 0;
            if (!(sh->tensors = malloc((size_t)n * sizeof *sh->tensors)))
                return me_error_set(err, ME_ERR_NOMEM, "inspect: out of memory");
            r->n_shared++;
            for (int b = 0; b < r->n; b++) {
                const me_report_tensor *tb = &r->t[b];
                if (!tb->is_gamma || tb->dim != ta->dim) continue;
                for (size_t j = 0; j < tb->n_outliers; j++)
                    if (tb->outliers[j].dim == d) sh->tensors[sh->n++] = b;
            }
        }
    }
    /* sizes were visited one after another: order by dimension */
    for (int a = 1; a < r->n_shared; a++)
        for (int b = a; b > 0 && r->shared[b].dim < r->shared[b - 1].dim; b--) {
            me_report_shared t = r->shared[b];
            r->shared[b] = r->shared[b - 1];
            r->shared[b - 1] = t;
        }
    return ME_OK;
}

me_status me_report_analyze(me_report *r, const me_history *h, const char *run, int top_k, double sigma,
                            me_error *err) {
    memset(r, 0, sizeof *r);
    if (top_k < 1) return me_error_set(err, ME_ERR_USAGE, "inspect: top K is %d, expected at least 1", top_k);
    if (!(sigma > 0) || !isfinite(sigma))
        return me_error_set(err, ME_ERR_USAGE, "inspect: sigma is %g, expected a finite number above 0", sigma);
    if (h->n_snap == 0) return me_error_set(err, ME_ERR_FORMAT, "history: no snapshots, expected at least one");
    snprintf(r->run, sizeof r->run, "%s", run ? run : "");
    r->n_snap = h->n_snap;
    r->first_step = h->steps[0];
    r->last_step = h->steps[h->n_snap - 1];
    r->top_k = top_k;
    r->off_threshold = ME_REPORT_OFF_THRESHOLD;
    r->sigma = sigma;
    r->t = calloc((size_t)h->n + 1, sizeof *r->t);
    if (!r->t) return me_error_set(err, ME_ERR_NOMEM, "inspect: out of memory");
    r->n = h->n;
    for (int i = 0; i < h->n; i++) {
        me_report_tensor *t = &r->t[i];
        size_t dim = h->dim[i];
        const float *x0 = me_history_at(h, i, 0), *x1 = me_history_at(h, i, h->n_snap - 1);
        memcpy(t->name, h->names[i], ME_NAME_MAX);
        t->is_gamma = h->is_gamma[i];
        t->dim = dim;
        me_mean_std(x0, dim, &t->mean_start, &t->std_start);
        me_mean_std(x1, dim, &t->mean_end, &t->std_end);
        t->l2_drift = me_history_l2_from_first(h, i, h->n_snap - 1);

        size_t k = (size_t)top_k < dim ? (size_t)top_k : dim;
        size_t *idx = malloc((k + 1) * sizeof *idx);
        t->top = calloc(k + 1, sizeof *t->top);
        if (!idx || !t->top) {
            free(idx);
            me_report_free(r);
            return me_error_set(err, ME_ERR_NOMEM, "inspect: out of memory");
        }
        report_top_moved(x0, x1, dim, k, idx);
        for (size_t j = 0; j < k; j++) fill_dim(h, i, idx[j], &t->top[j]);
        t->n_top = (int)k;
        free(idx);

        if (!t->is_gamma) continue;
        for (size_t d = 0; d < dim; d++) t->n_off += fabs(x1[d]) < r->off_threshold;
        t->off = calloc(t->n_off + 1, sizeof *t->off);
        if (!t->off) {
            me_report_free(r);
            return me_error_set(err, ME_ERR_NOMEM, "inspect: out of memory");
        }
        size_t o = 0;
        for (size_t d = 0; d < dim; d++)
            if (fabs(x1[d]) < r->off_threshold) fill_dim(h, i, d, &t->off[o++]);
        me_status st = me_report_outliers(h, i, sigma, &t->outliers, &t->n_outliers, err);
        if (st) {
            me_report_free(r);
            return st;
        }
    }
    me_status st = find_shared(r, err);
    if (st) me_report_free(r);
    return st;
}

me_status me_report_inspect(me_report *r, const char *run_dir, int top_k, double sigma, me_error *err) {
    memset(r, 0, sizeof *r);
    char *path;
    me_status st = report_run_file(run_dir, "history.safetensors", &path, err);
    if (st) return st;
    me_history h;
    st = me_history_read(&h, path, err);
    if (st == ME_OK) {
        char name[256];
        me_report_run_name(run_dir, name, sizeof name);
        st = me_report_analyze(r, &h, name, top_k, sigma, err);
        if (st == ME_ERR_FORMAT) me_error_prefix(err, "%s", path);
        me_history_free(&h);
    }
    free(path);
    return st;
}

static const char *kind_name(const me_report_tensor *t) { return t->is_gamma ? "gamma" : "beta"; }

me_status me_report_print(const me_report *r, FILE *f, me_error *err) {
    fprintf(f, "run %s: %zu snapshots, steps %lld..%lld\n", r->run[0] ? r->run : "(unnamed)", r->n_snap,
            (long long)r->first_step, (long long)r->last_step);
    fprintf(f, "top: the dimensions that moved most, by |end - start| (--top %d); fastest step = the snapshot after "
               "the largest |change| per step between consecutive snapshots\n",
            r->top_k);
    fprintf(f, "switched off: gamma dimensions whose final |gamma| < %g\n", r->off_threshold);
    fprintf(f, "outliers: gamma dimensions with |gamma_d - mean| > %g std (over the tensor's dimensions) at the last "
               "snapshot; first beyond = the first snapshot where that held\n", r->sigma);
    for (int i = 0; i < r->n; i++) {
        const me_report_tensor *t = &r->t[i];
        fprintf(f, "\n%s  (%s, %zu dims)\n", t->name, kind_name(t), t->dim);
        fprintf(f, "  mean %.6f -> %.6f   std %.6f -> %.6f   L2 drift from step %lld: %.6f\n", t->mean_start,
                t->mean_end, t->std_start, t->std_end, (long long)r->first_step, t->l2_drift);
        if ((size_t)t->n_top < t->dim)
            fprintf(f, "  top %d of %zu dimensions:\n", t->n_top, t->dim);
        else
            fprintf(f, "  all %zu dimensions%s:\n", t->dim, (size_t)r->top_k > t->dim ? " (--top asked for more)" : "");
        fprintf(f, "  %4s %6s %12s %12s %12s %14s %14s\n", "rank", "dim", "start", "end", "change", "fastest step",
                "|change|/step");
        for (int j = 0; j < t->n_top; j++) {
            const me_report_dim *d = &t->top[j];
            char when[32] = "-";
            if (d->fastest_step >= 0) snprintf(when, sizeof when, "%lld", (long long)d->fastest_step);
            fprintf(f, "  %4d %6zu %12.6f %12.6f %+12.6f %14s %14.3e\n", j + 1, d->dim, d->start, d->end,
                    d->end - d->start, when, d->fastest_rate);
        }
        if (!t->is_gamma) continue;
        if (t->n_off == 0) {
            fprintf(f, "  switched off (|gamma| < %g): none\n", r->off_threshold);
        } else {
            fprintf(f, "  switched off (|gamma| < %g): %zu of %zu:", r->off_threshold, t->n_off, t->dim);
            size_t show = t->n_off < 32 ? t->n_off : 32;
            for (size_t j = 0; j < show; j++)
                fprintf(f, "%s dim %zu (%.4f)", j ? "," : "", t->off[j].dim, t->off[j].end);
            if (show < t->n_off) fprintf(f, ", ... %zu more (see --json)", t->n_off - show);
            fprintf(f, "\n");
        }
        if (t->n_outliers == 0) {
            fprintf(f, "  outliers (> %g std): none\n", r->sigma);
            continue;
        }
        fprintf(f, "  outliers (> %g std): %zu of %zu\n  %6s %12s %10s %14s\n", r->sigma, t->n_outliers, t->dim, "dim",
                "gamma", "std away", "first beyond");
        for (size_t j = 0; j < t->n_outliers; j++) {
            const me_report_outlier *o = &t->outliers[j];
            fprintf(f, "  %6zu %12.6f %+10.2f %14lld\n", o->dim, o->value, o->z, (long long)o->first_step);
        }
    }
    fprintf(f, "\noutlier dimensions in two or more LayerNorms:");
    if (r->n_shared == 0) fprintf(f, " none\n");
    else fprintf(f, "\n");
    for (int k = 0; k < r->n_shared; k++) {
        fprintf(f, "  dim %zu in %d:", r->shared[k].dim, r->shared[k].n);
        for (int j = 0; j < r->shared[k].n; j++) fprintf(f, "%s %s", j ? "," : "", r->t[r->shared[k].tensors[j]].name);
        fprintf(f, "\n");
    }
    if (ferror(f)) return me_error_set(err, ME_ERR_IO, "inspect: write error on the output");
    return ME_OK;
}

static cJSON *dim_json(const me_report_dim *d, int full) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "dim", (double)d->dim);
    cJSON_AddNumberToObject(o, "start", d->start);
    cJSON_AddNumberToObject(o, "end", d->end);
    if (full) {
        cJSON_AddNumberToObject(o, "change", d->end - d->start);
        cJSON_AddNumberToObject(o, "fastest_step", (double)d->fastest_step);
        cJSON_AddNumberToObject(o, "fastest_from_step", (double)d->fastest_from);
        cJSON_AddNumberToObject(o, "fastest_rate", d->fastest_rate);
    }
    return o;
}

cJSON *me_report_json(const me_report *r) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    int ok = cJSON_AddStringToObject(root, "run", r->run) != NULL;
    cJSON_AddNumberToObject(root, "snapshots", (double)r->n_snap);
    cJSON_AddNumberToObject(root, "first_step", (double)r->first_step);
    cJSON_AddNumberToObject(root, "last_step", (double)r->last_step);
    cJSON_AddNumberToObject(root, "top_k", r->top_k);
    cJSON_AddNumberToObject(root, "switched_off_threshold", r->off_threshold);
    cJSON_AddNumberToObject(root, "sigma", r->sigma);
    cJSON *tensors = cJSON_AddArrayToObject(root, "tensors");
    ok = ok && tensors;
    for (int i = 0; ok && i < r->n; i++) {
        const me_report_tensor *t = &r->t[i];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(tensors, o)) {
            cJSON_Delete(o);
            ok = 0;
            break;
        }
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "kind", kind_name(t));
        cJSON_AddNumberToObject(o, "d_model", (double)t->dim);
        cJSON_AddNumberToObject(o, "mean_start", t->mean_start);
        cJSON_AddNumberToObject(o, "std_start", t->std_start);
        cJSON_AddNumberToObject(o, "mean_end", t->mean_end);
        cJSON_AddNumberToObject(o, "std_end", t->std_end);
        cJSON_AddNumberToObject(o, "l2_drift", t->l2_drift);
        cJSON_AddNumberToObject(o, "top_shown", t->n_top);
        cJSON *top = cJSON_AddArrayToObject(o, "top");
        ok = top != NULL;
        for (int j = 0; ok && j < t->n_top; j++) {
            cJSON *d = dim_json(&t->top[j], 1);
            ok = d && cJSON_AddItemToArray(top, d);
        }
        if (!ok || !t->is_gamma) continue;
        cJSON *off = cJSON_AddArrayToObject(o, "switched_off");
        ok = off != NULL;
        for (size_t j = 0; ok && j < t->n_off; j++) {
            cJSON *d = dim_json(&t->off[j], 0);
            ok = d && cJSON_AddItemToArray(off, d);
        }
        cJSON *outl = ok ? cJSON_AddArrayToObject(o, "outliers") : NULL;
        ok = outl != NULL;
        for (size_t j = 0; ok && j < t->n_outliers; j++) {
            cJSON *d = cJSON_CreateObject();
            ok = d && cJSON_AddItemToArray(outl, d);
            if (!ok) {
                cJSON_Delete(d);
                break;
            }
            cJSON_AddNumberToObject(d, "dim", (double)t->outliers[j].dim);
            cJSON_AddNumberToObject(d, "gamma", t->outliers[j].value);
            cJSON_AddNumberToObject(d, "z", t->outliers[j].z);
            cJSON_AddNumberToObject(d, "first_step", (double)t->outliers[j].first_step);
        }
    }
    cJSON *shared = ok ? cJSON_AddArrayToObject(root, "shared_outliers") : NULL;
    ok = ok && shared;
    for (int k = 0; ok && k < r->n_shared; k++) {
        cJSON *o = cJSON_CreateObject(), *names = NULL;
        ok = o && cJSON_AddItemToArray(shared, o);
        if (!ok) {
            cJSON_Delete(o);
            break;
        }
        cJSON_AddNumberToObject(o, "dim", (double)r->shared[k].dim);
        ok = (names = cJSON_AddArrayToObject(o, "layernorms")) != NULL;
        for (int j = 0; ok && j < r->shared[k].n; j++) {
            cJSON *nm = cJSON_CreateString(r->t[r->shared[k].tensors[j]].name);
            ok = nm && cJSON_AddItemToArray(names, nm);
        }
    }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}
