#include "minienc/history.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minienc/safetensors.h"

#include "file.h"
#include "internal.h"

static me_status alloc_tensors(me_history *h, int n, me_error *err) {
    h->n = n;
    h->names = calloc((size_t)n + 1, sizeof *h->names);
    h->dim = calloc((size_t)n + 1, sizeof *h->dim);
    h->param = calloc((size_t)n + 1, sizeof *h->param);
    h->is_gamma = calloc((size_t)n + 1, sizeof *h->is_gamma);
    h->data = calloc((size_t)n + 1, sizeof *h->data);
    if (!h->names || !h->dim || !h->param || !h->is_gamma || !h->data)
        return me_error_set(err, ME_ERR_NOMEM, "out of memory for a history of %d tensors", n);
    return ME_OK;
}

me_status me_history_init(me_history *h, const me_params *p, me_error *err) {
    memset(h, 0, sizeof *h);
    int n = 0;
    for (int i = 0; i < p->n; i++) n += (p->t[i].flags & ME_PARAM_NORM) != 0;
    me_status st = alloc_tensors(h, n, err);
    if (st) return st;
    int k = 0;
    for (int i = 0; i < p->n; i++) {
        if (!(p->t[i].flags & ME_PARAM_NORM)) continue;
        memcpy(h->names[k], p->t[i].name, ME_NAME_MAX);
        h->dim[k] = p->t[i].count;
        h->param[k] = i;
        h->is_gamma[k] = (p->t[i].flags & ME_PARAM_GAMMA) != 0;
        k++;
    }
    return ME_OK;
}

static me_status grow(me_history *h, size_t need, me_error *err) {
    if (need <= h->cap) return ME_OK;
    size_t cap = h->cap ? h->cap : 16, bytes;
    while (cap < need) {
        if (cap > (size_t)-1 / 2) return me_error_set(err, ME_ERR_NOMEM, "history of %zu snapshots overflows", need);
        cap *= 2;
    }
    for (int i = 0; i < h->n; i++)
        if (!me_mul_ok(cap, h->dim[i] * sizeof(float), &bytes))
            return me_error_set(err, ME_ERR_NOMEM, "history of %zu snapshots x %zu values overflows", cap, h->dim[i]);
    int64_t *steps = realloc(h->steps, cap * sizeof *steps);
    if (!steps) return me_error_set(err, ME_ERR_NOMEM, "out of memory for %zu history snapshots", cap);
    h->steps = steps;
    for (int i = 0; i < h->n; i++) {
        float *d = realloc(h->data[i], cap * h->dim[i] * sizeof(float));
        if (!d) return me_error_set(err, ME_ERR_NOMEM, "out of memory for %zu history snapshots", cap);
        h->data[i] = d;
    }
    h->cap = cap;
    return ME_OK;
}

me_status me_history_record(me_history *h, const me_params *p, int64_t step, me_error *err) {
    size_t k = h->n_snap;
    if (k > 0 && h->steps[k - 1] == step) k--;
    me_status st = grow(h, k + 1, err);
    if (st) return st;
    h->steps[k] = step;
    for (int i = 0; i < h->n; i++)
        memcpy(h->data[i] + k * h->dim[i], me_params_data(p, h->param[i]), h->dim[i] * sizeof(float));
    h->n_snap = k + 1;
    return ME_OK;
}

me_status me_history_set_config(me_history *h, const char *text, me_error *err) {
    char *copy = NULL;
    if (text) {
        size_t n = strlen(text) + 1;
        if (!(copy = malloc(n))) return me_error_set(err, ME_ERR_NOMEM, "out of memory for a history's config");
        memcpy(copy, text, n);
    }
    free(h->config);
    h->config = copy;
    return ME_OK;
}

void me_history_truncate(me_history *h, int64_t max_step) {
    while (h->n_snap > 0 && h->steps[h->n_snap - 1] > max_step) h->n_snap--;
}

me_status me_history_write(const me_history *h, const char *path, me_error *err) {
    me_st_writer w;
    me_st_writer_init(&w);
    me_status st = me_st_writer_meta(&w, "format", "minienc-history-1", err);
    if (!st && h->config) st = me_st_writer_meta(&w, "config", h->config, err);
    size_t shape[2] = {h->n_snap, 0}, sshape[1] = {h->n_snap};
    for (int i = 0; i < h->n && !st; i++) {
        shape[1] = h->dim[i];
        st = me_st_writer_add(&w, h->names[i], ME_DT_F32, 2, shape, h->data[i], err);
    }
    if (!st) st = me_st_writer_add(&w, "step", ME_DT_I64, 1, sshape, h->steps, err);
    if (!st) st = me_st_writer_write(&w, path, err);
    me_st_writer_free(&w);
    return st;
}

me_status me_history_read(me_history *h, const char *path, me_error *err) {
    memset(h, 0, sizeof *h);
    me_st_file f;
    me_status st = me_st_read(&f, path, err);
    if (st) return st;
    const me_st_tensor *ts = me_st_find(&f, "step");
    if (!ts || ts->ndim != 1 || ts->dtype != ME_DT_I64) {
        me_st_free(&f);
        return me_error_set(err, ME_ERR_FORMAT, "%s: tensor 'step' missing or not I64 [snapshots]", path);
    }
    size_t snaps = ts->shape[0];
    /* tensors in header order are sorted by offset; keep the written order, which is the same */
    if ((st = alloc_tensors(h, f.n - 1, err))) goto fail;
    int k = 0;
    for (int i = 0; i < f.n; i++) {
        const me_st_tensor *t = &f.tensors[i];
        if (t == ts) continue;
        if (t->dtype != ME_DT_F32 || t->ndim != 2 || t->shape[0] != snaps || strlen(t->name) >= ME_NAME_MAX) {
            st = me_error_set(err, ME_ERR_FORMAT, "%s: tensor '%s' must be F32 [%zu, d_model]", path, t->name, snaps);
            goto fail;
        }
        memcpy(h->names[k], t->name, strlen(t->name) + 1);
        h->dim[k] = t->shape[1];
        h->param[k] = -1;
        size_t len = strlen(t->name);
        h->is_gamma[k] = len >= 7 && strcmp(t->name + len - 7, ".weight") == 0;
        k++;
    }
    if ((st = grow(h, snaps ? snaps : 1, err))) goto fail;
    memcpy(h->steps, ts->data, snaps * sizeof(int64_t));
    for (size_t s = 1; s < snaps; s++)
        if (h->steps[s] <= h->steps[s - 1]) {
            st = me_error_set(err, ME_ERR_FORMAT, "%s: steps are not increasing at snapshot %zu", path, s);
            goto fail;
        }
    for (int i = 0; i < h->n; i++) me_st_to_f32(me_st_find(&f, h->names[i]), h->data[i]);
    h->n_snap = snaps;
    if ((st = me_history_set_config(h, me_st_meta(&f, "config"), err))) goto fail;
    me_st_free(&f);
    return ME_OK;
fail:
    me_st_free(&f);
    me_history_free(h);
    return st;
}

me_status me_history_bind(me_history *h, const me_params *p, me_error *err) {
    int want = 0;
    for (int i = 0; i < p->n; i++) want += (p->t[i].flags & ME_PARAM_NORM) != 0;
    if (want != h->n) return me_error_set(err, ME_ERR_SHAPE, "history has %d tensors, the model %d", h->n, want);
    for (int i = 0; i < h->n; i++) {
        int j = me_params_find(p, h->names[i]);
        if (j < 0 || !(p->t[j].flags & ME_PARAM_NORM) || p->t[j].count != h->dim[i])
            return me_error_set(err, ME_ERR_SHAPE, "history tensor '%s' [%zu] matches no LayerNorm tensor of the model",
                                h->names[i], h->dim[i]);
        h->param[i] = j;
        h->is_gamma[i] = (p->t[j].flags & ME_PARAM_GAMMA) != 0;
    }
    return ME_OK;
}

int me_history_norms(const me_history *h, me_history_norm *g) {
    int n = 0;
    for (int i = 0; i < h->n; i++) {
        char prefix[ME_NAME_MAX];
        snprintf(prefix, sizeof prefix, "%s", h->names[i]);
        size_t len = strlen(prefix);
        if (me_ends_with(prefix, ".weight")) prefix[len - 7] = '\0';
        else if (me_ends_with(prefix, ".bias")) prefix[len - 5] = '\0';
        int k = 0;
        while (k < n && strcmp(g[k].prefix, prefix) != 0) k++;
        if (k == n) {
            memcpy(g[k].prefix, prefix, sizeof prefix);
            const char *s = strncmp(prefix, "encoder.", 8) == 0 && prefix[8] ? prefix + 8 : prefix;
            size_t j = 0;
            for (; s[j] && j + 1 < ME_NAME_MAX; j++) {
                char c = s[j];
                int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                         c == '_' || c == '-';
                g[k].stem[j] = ok ? c : '_';
            }
            g[k].stem[j] = '\0';
            g[k].gamma = g[k].beta = -1;
            n++;
        }
        /* A second tensor of the same kind under one prefix cannot come from a LayerNorm; keep the first. */
        if (h->is_gamma[i] && g[k].gamma < 0) g[k].gamma = i;
        else if (!h->is_gamma[i] && g[k].beta < 0) g[k].beta = i;
    }
    return n;
}

double me_history_l2_from_first(const me_history *h, int i, size_t k) {
    const float *x = me_history_at(h, i, k), *x0 = me_history_at(h, i, 0);
    double l2 = 0;
    for (size_t j = 0; j < h->dim[i]; j++) l2 += ((double)x[j] - x0[j]) * ((double)x[j] - x0[j]);
    return sqrt(l2);
}

me_status me_history_write_csv(const me_history *h, const char *path, me_error *err) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return me_error_set(err, ME_ERR_NOMEM, "out of memory writing %s", path);
    fprintf(f, "step,tensor,mean,std,min,max,l2_from_init\n");
    for (size_t s = 0; s < h->n_snap; s++)
        for (int i = 0; i < h->n; i++) {
            const float *x = me_history_at(h, i, s);
            double mean, sd, mn = INFINITY, mx = -INFINITY;
            me_mean_std(x, h->dim[i], &mean, &sd);
            for (size_t j = 0; j < h->dim[i]; j++) {
                mn = fmin(mn, x[j]);
                mx = fmax(mx, x[j]);
            }
            fprintf(f, "%lld,%s,%.9g,%.9g,%.9g,%.9g,%.9g\n", (long long)h->steps[s], h->names[i], mean, sd, mn,
                    mx, me_history_l2_from_first(h, i, s));
        }
    if (fclose(f) != 0) {
        free(buf);
        return me_error_set(err, ME_ERR_NOMEM, "out of memory writing %s", path);
    }
    me_status st = me_file_write_atomic(path, buf, len, err);
    free(buf);
    return st;
}

void me_history_free(me_history *h) {
    if (h->data)
        for (int i = 0; i < h->n; i++) free(h->data[i]);
    free(h->data);
    free(h->names);
    free(h->dim);
    free(h->param);
    free(h->is_gamma);
    free(h->steps);
    free(h->config);
    memset(h, 0, sizeof *h);
}
