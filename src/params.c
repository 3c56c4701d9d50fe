#include "minienc/params.h"

#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void me_params_init(me_params *p) { memset(p, 0, sizeof *p); }

me_status me_params_add(me_params *p, const char *name, int ndim, const size_t *shape, unsigned flags,
                        int *index_out, me_error *err) {
    if (p->data) return me_error_set(err, ME_ERR_CONFIG, "%s: registry already allocated", name);
    if (strlen(name) >= ME_NAME_MAX)
        return me_error_set(err, ME_ERR_CONFIG, "%s: tensor name longer than %d bytes", name, ME_NAME_MAX - 1);
    if (ndim < 1 || ndim > ME_MAX_DIMS)
        return me_error_set(err, ME_ERR_CONFIG, "%s: %d dimensions, expected 1 to %d", name, ndim, ME_MAX_DIMS);
    if (me_params_find(p, name) >= 0)
        return me_error_set(err, ME_ERR_CONFIG, "%s: tensor registered twice", name);
    size_t count = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 0) return me_error_set(err, ME_ERR_CONFIG, "%s: dimension %d is zero", name, d);
        if (!me_mul_ok(count, shape[d], &count))
            return me_error_set(err, ME_ERR_CONFIG, "%s: element count overflows size_t", name);
    }
    if (count > SIZE_MAX - p->total)
        return me_error_set(err, ME_ERR_CONFIG, "%s: total parameter count overflows size_t", name);
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 32;
        me_tensor_info *t = realloc(p->t, (size_t)cap * sizeof *t);
        if (!t) return me_error_set(err, ME_ERR_NOMEM, "out of memory registering %s", name);
        p->t = t;
        p->cap = cap;
    }
    me_tensor_info *ti = &p->t[p->n];
    memset(ti, 0, sizeof *ti);
    memcpy(ti->name, name, strlen(name) + 1);
    ti->ndim = ndim;
    for (int d = 0; d < ndim; d++) ti->shape[d] = shape[d];
    ti->count = count;
    ti->offset = p->total;
    ti->flags = flags;
    p->total += count;
    if (index_out) *index_out = p->n;
    p->n++;
    return ME_OK;
}

me_status me_params_alloc(me_params *p, me_error *err) {
    size_t bytes;
    if (!me_mul_ok(p->total, sizeof(float), &bytes))
        return me_error_set(err, ME_ERR_CONFIG, "parameter block of %zu floats overflows size_t", p->total);
    if (!p->borrowed) p->data = me_alloc(bytes ? bytes : 64); /* borrowed: values belong to another registry */
    p->grad = me_alloc(bytes ? bytes : 64);
    if (!p->data || !p->grad) {
        if (!p->borrowed) me_free(p->data), p->data = NULL;
        me_free(p->grad);
        p->grad = NULL;
        return me_error_set(err, ME_ERR_NOMEM, "cannot allocate %d x %.1f MiB for parameters and gradients",
                            p->borrowed ? 1 : 2, (double)bytes / (1024.0 * 1024.0));
    }
    return ME_OK;
}

int me_params_find(const me_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->t[i].name, name) == 0) return i;
    return -1;
}

void me_params_zero_grad(me_params *p) {
    if (p->grad) memset(p->grad, 0, p->total * sizeof(float));
}

void me_params_borrow_data(me_params *p, float *data) {
    if (!p->borrowed) me_free(p->data);
    p->data = data;
    p->borrowed = 1;
}

/* g[lo, hi) = the shards' gradients summed in shard order, ((s0 + s1) + s2) + ..., a shard at a time so
 * that each loop vectorises (compiled per CPU kind; a lane rounds as one value at a time) */
ME_TARGET_CLONES static void sum_grads_part(float *g, const me_params *const *shards, int n, size_t lo, size_t hi) {
    const float *s0 = shards[0]->grad;
    if (n == 1) {
        memcpy(g + lo, s0 + lo, (hi - lo) * sizeof(float));
        return;
    }
    const float *s1 = shards[1]->grad;
    for (size_t i = lo; i < hi; i++) g[i] = s0[i] + s1[i];
    for (int t = 2; t < n; t++) {
        const float *st = shards[t]->grad;
        for (size_t i = lo; i < hi; i++) g[i] += st[i];
    }
}

void me_params_sum_grads(me_params *into, const me_params *const *shards, int n) {
#pragma omp parallel if (into->total >= 65536)
    {
        size_t lo, hi;
        me_thread_range(into->total, &lo, &hi);
        sum_grads_part(into->grad, shards, n, lo, hi);
    }
}

void me_params_free(me_params *p) {
    free(p->t);
    if (!p->borrowed) me_free(p->data);
    me_free(p->grad);
    memset(p, 0, sizeof *p);
}
