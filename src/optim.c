/* AdamW and SGD over the parameter registry, learning-rate schedules, gradient clipping.
 * The update rules and their order of operations follow torch.optim (single-tensor, non-foreach
 * path); see minienc/optim.h for the formulas. */
#include "minienc/optim.h"

#include "internal.h"
#include "profile.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static me_status check_range(me_error *err, const char *key, double value, int ok, const char *expected) {
    if (ok) return ME_OK;
    return me_error_set(err, ME_ERR_CONFIG, "train.%s: %g is out of range, expected %s", key, value,
                        expected);
}

me_status me_optim_init(me_optim *o, const me_params *p, const me_train_config *t, me_error *err) {
    memset(o, 0, sizeof *o);
    if (!p->data || !p->grad)
        return me_error_set(err, ME_ERR_CONFIG, "optimizer: parameter registry is not allocated yet, "
                                                "expected me_params_alloc before me_optim_init");
    if (t->optimizer != ME_OPT_ADAMW && t->optimizer != ME_OPT_SGD)
        return me_error_set(err, ME_ERR_CONFIG, "train.optimizer: unknown optimizer %d, expected adamw or sgd",
                            (int)t->optimizer);
    me_status st = ME_OK;
    if (t->optimizer == ME_OPT_ADAMW) {
        if (!st) st = check_range(err, "beta1", t->beta1, t->beta1 >= 0.0 && t->beta1 < 1.0, "0 <= beta1 < 1");
        if (!st) st = check_range(err, "beta2", t->beta2, t->beta2 >= 0.0 && t->beta2 < 1.0, "0 <= beta2 < 1");
        if (!st) st = check_range(err, "eps", t->eps, t->eps >= 0.0, "eps >= 0");
    } else {
        if (!st) st = check_range(err, "momentum", t->momentum, t->momentum >= 0.0, "momentum >= 0");
    }
    if (!st) st = check_range(err, "weight_decay", t->weight_decay, t->weight_decay >= 0.0, "weight_decay >= 0");
    if (st) return st;

    o->kind = t->optimizer;
    o->beta1 = t->beta1;
    o->beta2 = t->beta2;
    o->eps = t->eps;
    o->weight_decay = t->weight_decay;
    o->momentum = t->momentum;
    o->decay_norm_and_bias = t->decay_norm_and_bias;
    o->n_tensors = p->n;
    o->total = p->total;

    size_t bytes;
    if (!me_mul_ok(p->total, sizeof(float), &bytes))
        return me_error_set(err, ME_ERR_CONFIG, "optimizer: state of %zu floats overflows size_t", p->total);
    if (bytes == 0) bytes = sizeof(float); /* me_alloc refuses 0 */
    o->m = me_alloc(bytes);
    if (o->kind == ME_OPT_ADAMW) o->v = me_alloc(bytes);
    o->decay = me_alloc(p->n > 0 ? (size_t)p->n : 1);
    if (!o->m || (o->kind == ME_OPT_ADAMW && !o->v) || !o->decay) {
        me_optim_free(o);
        return me_error_set(err, ME_ERR_NOMEM, "optimizer: cannot allocate %s state (%.1f MiB)",
                            t->optimizer == ME_OPT_ADAMW ? "2 x" : "1 x", (double)bytes / (1024.0 * 1024.0));
    }
    for (int i = 0; i < p->n; i++) {
        int exempt = (p->t[i].flags & (ME_PARAM_NORM | ME_PARAM_BIAS)) != 0;
        o->decay[i] = (unsigned char)(o->decay_norm_and_bias || !exempt);
    }
    return ME_OK;
}

/* p, g, m, v are [n] slices of one tensor. Compiled per CPU kind (internal.h): the loop vectorises to
 * the widest registers, each lane as one value at a time. */
ME_TARGET_CLONES static void adamw_tensor(float *p, const float *g, float *m, float *v, size_t n, float decay_factor,
                         float b1, float one_minus_b1, float b2, float one_minus_b2, float bc2_sqrt, float eps,
                         float neg_step_size) {
    for (size_t i = 0; i < n; i++) {
        float pi = p[i] * decay_factor;
        float gi = g[i];
        float mi = m[i] * b1 + gi * one_minus_b1;
        float vi = v[i] * b2 + one_minus_b2 * gi * gi; /* addcmul: v + value*g*g */
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + neg_step_size * (mi / denom);
    }
}

static void adamw_step(me_optim *o, me_params *p, double lr) {
    double t = (double)(o->step + 1);
    double b1 = o->beta1, b2 = o->beta2;
    double bias_correction1 = 1.0 - pow(b1, t);
    double bias_correction2 = 1.0 - pow(b2, t);
    float neg_step_size = (float)(-lr / bias_correction1);
    float bc2_sqrt = (float)sqrt(bias_correction2);
    /* PyTorch: param.mul_(1 - lr * weight_decay), the factor formed in double. */
    float decay_factor = (float)(1.0 - lr * o->weight_decay);
    /* elementwise and memory-bound: each thread takes one contiguous range of the whole parameter block
     * (across tensors), so small models split too, in one parallel region; every element's update is
     * the same whatever the split */
#pragma omp parallel if (ME_PAR(p->total >= 16384))
    {
        size_t lo, hi;
        me_thread_range(p->total, &lo, &hi);
        for (int k = 0; k < p->n; k++) {
            const me_tensor_info *ti = &p->t[k];
            size_t a = ti->offset > lo ? ti->offset : lo, b = ti->offset + ti->count < hi ? ti->offset + ti->count : hi;
            if (a >= b) continue;
            adamw_tensor(p->data + a, p->grad + a, o->m + a, o->v + a, b - a, o->decay[k] ? decay_factor : 1.0f,
                         (float)b1, (float)(1.0 - b1), (float)b2, (float)(1.0 - b2), bc2_sqrt, (float)o->eps,
                         neg_step_size);
        }
    }
}

static void sgd_step(me_optim *o, me_params *p, double lr_d) {
    float wd = (float)o->weight_decay, mu = (float)o->momentum, lr = (float)lr_d;
    int first = o->step == 0;
    for (int k = 0; k < p->n; k++) {
        const me_tensor_info *ti = &p->t[k];
        float *w = p->data + ti->offset;       /* [count] */
        const float *g = p->grad + ti->offset; /* [count] */
        float *buf = o->m + ti->offset;        /* [count] */
        float wdk = o->decay[k] ? wd : 0.0f;
#pragma omp parallel for schedule(static) if (ME_PAR(ti->count >= 65536))
        for (size_t i = 0; i < ti->count; i++) {
            float d = wdk != 0.0f ? g[i] + wdk * w[i] : g[i];
            if (mu != 0.0f) {
                /* PyTorch clones d into a fresh buffer at the first update, then buf = mu*buf + d. */
                buf[i] = first ? d : buf[i] * mu + d;
                d = buf[i];
            }
            w[i] = w[i] + (-lr) * d;
        }
    }
}

void me_optim_step(me_optim *o, me_params *p, double lr) {
    assert(p->n == o->n_tensors && p->total == o->total && "registry changed after me_optim_init");
    if (o->kind == ME_OPT_ADAMW)
        adamw_step(o, p, lr);
    else
        sgd_step(o, p, lr);
    o->step++;
}

double me_schedule_lr(const me_train_config *t, int d_model, long step) {
    double lr = t->lr, s = (double)step;
    double w = t->warmup;
    switch (t->schedule) {
    case ME_SCHED_NOAM: {
        if (w < 1.0) w = 1.0;
        double n = s + 1.0;
        double a = 1.0 / sqrt(n), b = n * pow(w, -1.5);
        return lr / sqrt((double)d_model) * (a < b ? a : b);
    }
    case ME_SCHED_COSINE: {
        if (w > 0.0 && s < w) return lr * (s + 1.0) / w;
        double span = (double)t->steps - w;
        if (span < 1.0) span = 1.0;
        double q = (s - w) / span;
        if (q > 1.0) q = 1.0;
        if (q < 0.0) q = 0.0;
        return lr * 0.5 * (1.0 + cos(M_PI * q));
    }
    case ME_SCHED_CONSTANT:
    default:
        if (w > 0.0 && s < w) return lr * (s + 1.0) / w;
        return lr;
    }
}

double me_grad_norm(const me_params *p) {
    double sum = 0.0;
    /* serial: a reduction over threads would make the norm depend on the thread count (the split
     * matmuls already can: see me_matmul) */
    for (size_t i = 0; i < p->total; i++) {
        double g = p->grad[i];
        sum += g * g;
    }
    return sqrt(sum);
}

double me_clip_grad_norm(me_params *p, double max_norm) {
    double total = me_grad_norm(p);
    if (!(max_norm > 0.0) || !isfinite(total)) return total;
    double coef = max_norm / (total + 1e-6);
    if (coef < 1.0) {
        float c = (float)coef;
        for (size_t i = 0; i < p->total; i++) p->grad[i] *= c;
    }
    return total;
}

void me_optim_free(me_optim *o) {
    me_free(o->m);
    me_free(o->v);
    me_free(o->decay);
    memset(o, 0, sizeof *o);
}
