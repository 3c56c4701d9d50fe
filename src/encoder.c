#include "minienc/encoder.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minienc/ops.h"

#include "internal.h"
#include "profile.h"

static me_status reg(me_params *p, const char *prefix, int layer, const char *name, size_t d0, size_t d1,
                     unsigned flags, int *idx, me_error *err) {
    char full[ME_NAME_MAX + 32];
    if (layer >= 0)
        snprintf(full, sizeof full, "%slayers.%d.%s", prefix, layer, name);
    else
        snprintf(full, sizeof full, "%s%s", prefix, name);
    size_t shape[2] = {d0, d1};
    return me_params_add(p, full, d1 ? 2 : 1, shape, flags, idx, err);
}

me_status me_encoder_register(me_encoder *e, me_params *p, const char *prefix, const me_model_config *cfg,
                              me_error *err) {
    memset(e, 0, sizeof *e);
    e->cfg = *cfg;
    e->norm_w = e->norm_b = -1;
    if (cfg->d_model < 1 || cfg->n_heads < 1 || cfg->d_model % cfg->n_heads != 0)
        return me_error_set(err, ME_ERR_CONFIG, "d_model %d must be a positive multiple of n_heads %d",
                            cfg->d_model, cfg->n_heads);
    if (cfg->d_ff < 1 || cfg->n_layers < 1)
        return me_error_set(err, ME_ERR_CONFIG, "d_ff %d and n_layers %d must be positive", cfg->d_ff,
                            cfg->n_layers);
    e->li = calloc((size_t)cfg->n_layers, sizeof *e->li);
    if (!e->li) return me_error_set(err, ME_ERR_NOMEM, "out of memory for %d layers", cfg->n_layers);
    size_t d = (size_t)cfg->d_model, f = (size_t)cfg->d_ff;
    const unsigned B = ME_PARAM_BIAS, G = ME_PARAM_NORM | ME_PARAM_GAMMA, N = ME_PARAM_NORM;
    for (int l = 0; l < cfg->n_layers; l++) {
        me_layer_index *x = &e->li[l];
        me_status st;
        if ((st = reg(p, prefix, l, "self_attn.in_proj_weight", 3 * d, d, 0, &x->in_w, err)) ||
            (st = reg(p, prefix, l, "self_attn.in_proj_bias", 3 * d, 0, B, &x->in_b, err)) ||
            (st = reg(p, prefix, l, "self_attn.out_proj.weight", d, d, 0, &x->out_w, err)) ||
            (st = reg(p, prefix, l, "self_attn.out_proj.bias", d, 0, B, &x->out_b, err)) ||
            (st = reg(p, prefix, l, "linear1.weight", f, d, 0, &x->l1_w, err)) ||
            (st = reg(p, prefix, l, "linear1.bias", f, 0, B, &x->l1_b, err)) ||
            (st = reg(p, prefix, l, "linear2.weight", d, f, 0, &x->l2_w, err)) ||
            (st = reg(p, prefix, l, "linear2.bias", d, 0, B, &x->l2_b, err)) ||
            (st = reg(p, prefix, l, "norm1.weight", d, 0, G, &x->n1_w, err)) ||
            (st = reg(p, prefix, l, "norm1.bias", d, 0, N | B, &x->n1_b, err)) ||
            (st = reg(p, prefix, l, "norm2.weight", d, 0, G, &x->n2_w, err)) ||
            (st = reg(p, prefix, l, "norm2.bias", d, 0, N | B, &x->n2_b, err)))
            return st;
    }
    if (cfg->final_norm) {
        me_status st;
        if ((st = reg(p, prefix, -1, "norm.weight", d, 0, G, &e->norm_w, err)) ||
            (st = reg(p, prefix, -1, "norm.bias", d, 0, N | B, &e->norm_b, err)))
            return st;
    }
    return ME_OK;
}

static void fill_uniform(float *x, size_t n, float bound, me_rng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = bound * (2.0f * me_rng_uniform(rng) - 1.0f);
}

static void fill_const(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

void me_encoder_init_weights(const me_encoder *e, me_params *p, me_rng *rng) {
    float d = (float)e->cfg.d_model, f = (float)e->cfg.d_ff;
    for (int l = 0; l < e->cfg.n_layers; l++) {
        const me_layer_index *x = &e->li[l];
        /* xavier_uniform over [3D, D]: bound sqrt(6 / (fan_in + fan_out)) */
        fill_uniform(me_params_data(p, x->in_w), p->t[x->in_w].count, sqrtf(6.0f / (d + 3.0f * d)), rng);
        fill_const(me_params_data(p, x->in_b), p->t[x->in_b].count, 0.0f);
        fill_uniform(me_params_data(p, x->out_w), p->t[x->out_w].count, 1.0f / sqrtf(d), rng);
        fill_const(me_params_data(p, x->out_b), p->t[x->out_b].count, 0.0f);
        fill_uniform(me_params_data(p, x->l1_w), p->t[x->l1_w].count, 1.0f / sqrtf(d), rng);
        fill_uniform(me_params_data(p, x->l1_b), p->t[x->l1_b].count, 1.0f / sqrtf(d), rng);
        fill_uniform(me_params_data(p, x->l2_w), p->t[x->l2_w].count, 1.0f / sqrtf(f), rng);
        fill_uniform(me_params_data(p, x->l2_b), p->t[x->l2_b].count, 1.0f / sqrtf(f), rng);
        fill_const(me_params_data(p, x->n1_w), p->t[x->n1_w].count, 1.0f);
        fill_const(me_params_data(p, x->n1_b), p->t[x->n1_b].count, 0.0f);
        fill_const(me_params_data(p, x->n2_w), p->t[x->n2_w].count, 1.0f);
        fill_const(me_params_data(p, x->n2_b), p->t[x->n2_b].count, 0.0f);
    }
    if (e->norm_w >= 0) {
        fill_const(me_params_data(p, e->norm_w), p->t[e->norm_w].count, 1.0f);
        fill_const(me_params_data(p, e->norm_b), p->t[e->norm_b].count, 0.0f);
    }
}

/* *total += count * unit * times; returns 0 on overflow. */
static int add_bytes(size_t *total, size_t count, size_t unit, size_t times) {
    size_t b;
    if (!me_mul_ok(count, unit, &b) || !me_mul_ok(b, times, &b) || b > (size_t)-1 - *total) return 0;
    *total += b;
    return 1;
}

typedef struct {
    size_t t, td, t3d, tf, bhss;
} sizes;

static int get_sizes(const me_model_config *c, int max_b, int max_s, sizes *z) {
    size_t t, ss, bh;
    if (max_b < 1 || max_s < 1) return 0;
    if (!me_mul_ok((size_t)max_b, (size_t)max_s, &t)) return 0;
    if (!me_mul_ok((size_t)max_s, (size_t)max_s, &ss) || !me_mul_ok((size_t)max_b, (size_t)c->n_heads, &bh) ||
        !me_mul_ok(bh, ss, &z->bhss))
        return 0;
    z->t = t;
    return me_mul_ok(t, (size_t)c->d_model, &z->td) && me_mul_ok(z->td, 3, &z->t3d) &&
           me_mul_ok(t, (size_t)c->d_ff, &z->tf);
}

static int own_dqkv(const me_model_config *c) { return c->d_ff < 3 * c->d_model; }

/* Every buffer rounds up to 64 bytes; this many buffers at most, for the slack. */
static size_t n_buffers(const me_model_config *c) { return (size_t)c->n_layers * 20 + 16; }

size_t me_encoder_activation_bytes(const me_model_config *c, int max_b, int max_s, size_t *saved_out,
                                   size_t *work_out) {
    sizes z;
    if (!get_sizes(c, max_b, max_s, &z)) return 0;
    size_t per_layer = 0, saved = 0, work = 0, fl = sizeof(float);
    int drop = c->dropout > 0.0f;
    if (!add_bytes(&per_layer, z.td, fl, 5) ||              /* ln1_out attn res1 ln2_out res2 */
        !add_bytes(&per_layer, z.t, fl, 4) ||               /* means, rstds */
        !add_bytes(&per_layer, z.t3d, fl, 1) ||             /* qkv */
        !add_bytes(&per_layer, z.bhss, fl, drop ? 2 : 1) || /* probs (+ dropped) */
        !add_bytes(&per_layer, z.tf, fl, 2))                /* hpre hact */
        return 0;
    if (drop && (!add_bytes(&per_layer, z.td, 1, 2) || !add_bytes(&per_layer, z.tf, 1, 1))) return 0;
    if (!add_bytes(&saved, per_layer, 1, (size_t)c->n_layers)) return 0;
    if (c->final_norm && (!add_bytes(&saved, z.td, fl, 1) || !add_bytes(&saved, z.t, fl, 2))) return 0;
    if (!add_bytes(&work, z.td, fl, 4) ||                   /* g[2] dres dln */
        (own_dqkv(c) && !add_bytes(&work, z.t3d, fl, 1)) || !add_bytes(&work, z.bhss, fl, 1))
        return 0;
    if (saved_out) *saved_out = saved;
    if (work_out) *work_out = work;
    return saved > (size_t)-1 - work ? 0 : saved + work;
}

static void *take(unsigned char **cur, size_t count, size_t unit) {
    void *p = *cur;
    size_t bytes = (count * unit + 63) & ~(size_t)63;
    *cur += bytes;
    return p;
}

me_status me_encoder_alloc(me_encoder *e, int max_b, int max_s, me_error *err) {
    const me_model_config *c = &e->cfg;
    size_t bytes = me_encoder_activation_bytes(c, max_b, max_s, NULL, NULL), slack;
    sizes z;
    if (!bytes || !get_sizes(c, max_b, max_s, &z) || !me_mul_ok(n_buffers(c), 64, &slack) ||
        bytes > (size_t)-1 - slack)
        return me_error_set(err, ME_ERR_CONFIG, "activations for %d x %d tokens overflow size_t", max_b, max_s);
    bytes += slack;
    me_status st = me_refuse_beyond_memory((double)bytes, 0.0, NULL, err,
                                           "batch %d x seq %d needs %.1f GiB of activations", max_b, max_s,
                                           me_gib((double)bytes));
    if (st) return st;
    e->acts = calloc((size_t)c->n_layers, sizeof *e->acts);
    unsigned char *block = me_alloc(bytes);
    if (!e->acts || !block) {
        free(e->acts);
        me_free(block);
        e->acts = NULL;
        return me_error_set(err, ME_ERR_NOMEM, "cannot allocate %.1f MiB of activations for batch %d x seq %d",
                            (double)bytes / 1048576.0, max_b, max_s);
    }
    e->block = block;
    e->max_b = max_b;
    e->max_s = max_s;
    unsigned char *cur = block;
    int drop = c->dropout > 0.0f;
    size_t fl = sizeof(float);
    for (int l = 0; l < c->n_layers; l++) {
        me_layer_acts *a = &e->acts[l];
        a->ln1_out = take(&cur, z.td, fl);
        a->ln1_mean = take(&cur, z.t, fl);
        a->ln1_rstd = take(&cur, z.t, fl);
        a->qkv = take(&cur, z.t3d, fl);
        a->probs = take(&cur, z.bhss, fl);
        a->probs_drop = drop ? take(&cur, z.bhss, fl) : NULL;
        a->attn = take(&cur, z.td, fl);
        a->res1 = take(&cur, z.td, fl);
        a->ln2_out = take(&cur, z.td, fl);
        a->ln2_mean = take(&cur, z.t, fl);
        a->ln2_rstd = take(&cur, z.t, fl);
        a->hpre = take(&cur, z.tf, fl);
        a->hact = take(&cur, z.tf, fl);
        a->res2 = take(&cur, z.td, fl);
        if (drop) {
            a->mask1 = take(&cur, z.td, 1);
            a->mask_act = take(&cur, z.tf, 1);
            a->mask2 = take(&cur, z.td, 1);
        }
    }
    if (c->final_norm) {
        e->fn_out = take(&cur, z.td, fl);
        e->fn_mean = take(&cur, z.t, fl);
        e->fn_rstd = take(&cur, z.t, fl);
    }
    e->g[0] = take(&cur, z.td, fl);
    e->g[1] = take(&cur, z.td, fl);
    e->dres = take(&cur, z.td, fl);
    e->dln = take(&cur, z.td, fl);
    e->dqkv = own_dqkv(c) ? take(&cur, z.t3d, fl) : NULL;
    e->dprobs = take(&cur, z.bhss, fl);
    assert((size_t)(cur - block) <= bytes);
    return ME_OK;
}

void me_encoder_free(me_encoder *e) {
    me_free(e->block);
    free(e->acts);
    free(e->li);
    memset(e, 0, sizeof *e);
}

/* Self-attention sub-block: out[T,D] = out_proj(attention(in_proj(inp))), dropout on the weights. */
static void self_attention_forward(me_encoder *e, const me_params *p, me_layer_acts *a, const me_layer_index *x,
                                   const float *inp, float *out, float drop, const me_dropout_key *k, int layer) {
    int t = e->b * e->s, d = e->cfg.d_model;
    ME_PROF(ME_PROF_QKV,
            me_linear_forward(a->qkv, inp, me_params_data(p, x->in_w), me_params_data(p, x->in_b), t, d, 3 * d));
    ME_PROF(ME_PROF_ATTENTION, me_attention_forward(a->attn, a->probs, a->probs_drop, a->qkv, e->key_pad, e->b, e->s,
                                                    d, e->cfg.n_heads, drop, k, layer));
    ME_PROF(ME_PROF_OUT_PROJ,
            me_linear_forward(out, a->attn, me_params_data(p, x->out_w), me_params_data(p, x->out_b), t, d, d));
}

/* Feed-forward sub-block: out[T,D] = linear2(dropout(act(linear1(inp)))). */
static void ffn_forward(me_encoder *e, const me_params *p, me_layer_acts *a, const me_layer_index *x,
                        const float *inp, float *out, float drop, const me_dropout_key *k, int layer) {
    int t = e->b * e->s, d = e->cfg.d_model, f = e->cfg.d_ff;
    size_t tf = (size_t)t * f;
    ME_PROF(ME_PROF_LINEAR1,
            me_linear_forward(a->hpre, inp, me_params_data(p, x->l1_w), me_params_data(p, x->l1_b), t, d, f));
    me_prof_mark m = me_prof_begin();
    if (e->cfg.activation == ME_ACT_GELU)
        me_gelu_forward(a->hact, a->hpre, tf);
    else
        me_relu_forward(a->hact, a->hpre, tf);
    if (drop > 0.0f) me_dropout_forward(a->hact, a->mask_act, e->b, e->s, f, drop, k, layer, ME_DROP_ACT);
    me_prof_end(ME_PROF_ELEMENTWISE, m);
    ME_PROF(ME_PROF_LINEAR2,
            me_linear_forward(out, a->hact, me_params_data(p, x->l2_w), me_params_data(p, x->l2_b), t, f, d));
}

const float *me_encoder_forward(me_encoder *e, const me_params *p, const float *x, const uint8_t *key_pad,
                                int b, int s, int training, const me_dropout_key *drop_key) {
    const me_model_config *c = &e->cfg;
    e->b = b;
    e->s = s;
    e->key_pad = key_pad;
    e->training = training;
    int t = b * s, d = c->d_model;
    size_t td = (size_t)t * d;
    float drop = training ? c->dropout : 0.0f;
    assert(drop <= 0.0f || drop_key);
    const float *inp = x;
    for (int l = 0; l < c->n_layers; l++) {
        me_layer_acts *a = &e->acts[l];
        const me_layer_index *li = &e->li[l];
        a->inp = inp;
        if (!c->norm_first) {
            /* res1 = x + dropout(SA(x)); ln1 = LN1(res1); res2 = ln1 + dropout(FFN(ln1)); out = LN2(res2)
             * (each branch is computed into its residual buffer; the LayerNorm after it adds the skip input
             * in its first pass) */
            self_attention_forward(e, p, a, li, inp, a->res1, drop, drop_key, l);
            if (drop > 0.0f)
                ME_PROF(ME_PROF_ELEMENTWISE,
                        me_dropout_forward(a->res1, a->mask1, b, s, d, drop, drop_key, l, ME_DROP_RES1));
            ME_PROF(ME_PROF_LAYERNORM, me_add_layernorm_forward(a->ln1_out, a->ln1_mean, a->ln1_rstd, a->res1, inp,
                                                                me_params_data(p, li->n1_w),
                                                                me_params_data(p, li->n1_b), t, d, c->layer_norm_eps));
            ffn_forward(e, p, a, li, a->ln1_out, a->res2, drop, drop_key, l);
            if (drop > 0.0f)
                ME_PROF(ME_PROF_ELEMENTWISE,
                        me_dropout_forward(a->res2, a->mask2, b, s, d, drop, drop_key, l, ME_DROP_RES2));
            ME_PROF(ME_PROF_LAYERNORM, me_add_layernorm_forward(a->ln2_out, a->ln2_mean, a->ln2_rstd, a->res2,
                                                                a->ln1_out, me_params_data(p, li->n2_w),
                                                                me_params_data(p, li->n2_b), t, d, c->layer_norm_eps));
            inp = a->ln2_out;
        } else {
            /* res1 = x + dropout(SA(LN1(x))); res2 = res1 + dropout(FFN(LN2(res1))) */
            ME_PROF(ME_PROF_LAYERNORM, me_layernorm_forward(a->ln1_out, a->ln1_mean, a->ln1_rstd, inp,
                                                            me_params_data(p, li->n1_w), me_params_data(p, li->n1_b),
                                                            t, d, c->layer_norm_eps));
            self_attention_forward(e, p, a, li, a->ln1_out, a->res1, drop, drop_key, l);
            if (drop > 0.0f)
                ME_PROF(ME_PROF_ELEMENTWISE,
                        me_dropout_forward(a->res1, a->mask1, b, s, d, drop, drop_key, l, ME_DROP_RES1));
            ME_PROF(ME_PROF_LAYERNORM, me_add_layernorm_forward(a->ln2_out, a->ln2_mean, a->ln2_rstd, a->res1, inp,
                                                                me_params_data(p, li->n2_w),
                                                                me_params_data(p, li->n2_b), t, d, c->layer_norm_eps));
            ffn_forward(e, p, a, li, a->ln2_out, a->res2, drop, drop_key, l);
            me_prof_mark m = me_prof_begin();
            if (drop > 0.0f) me_dropout_forward(a->res2, a->mask2, b, s, d, drop, drop_key, l, ME_DROP_RES2);
            me_add_inplace(a->res2, a->res1, td);
            me_prof_end(ME_PROF_ELEMENTWISE, m);
            inp = a->res2;
        }
    }
    if (e->norm_w >= 0) {
        ME_PROF(ME_PROF_LAYERNORM, me_layernorm_forward(e->fn_out, e->fn_mean, e->fn_rstd, inp,
                                                        me_params_data(p, e->norm_w), me_params_data(p, e->norm_b), t,
                                                        d, c->layer_norm_eps));
        inp = e->fn_out;
    }
    e->out = inp;
    return inp;
}

/* A linear layer's backward, as me_linear_backward, with dinp[T,C] added to (accumulate) or set: a
 * gradient buffer the layer's input gradient fills needs no clearing first. */
static void linear_backward(float *dinp, int accumulate, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int t, int c, int oc) {
    /* dinp[T,C] (+)= dout[T,OC] * weight[OC,C] */
    if (dinp) me_matmul(0, 0, t, c, oc, 1.0f, dout, oc, weight, c, accumulate ? 1.0f : 0.0f, dinp, c);
    me_linear_backward(NULL, dweight, dbias, dout, inp, weight, t, c, oc);
}

/* Backward of the FFN sub-block: dout[T,D] is the gradient of its output (the residual's dropout
 * already undone). Adds parameter gradients into p->grad and dL/dinp into dinp[T,D] (accumulate) or
 * sets it. The gradient w.r.t. the hidden layer overwrites the layer's hact buffer (dead once dW2 is
 * formed). */
static void ffn_backward(me_encoder *e, me_params *p, me_layer_acts *a, const me_layer_index *x,
                         const float *inp, const float *dout, float *dinp, int accumulate, float drop) {
    int t = e->b * e->s, d = e->cfg.d_model, f = e->cfg.d_ff;
    size_t tf = (size_t)t * f;
    me_prof_mark m = me_prof_begin();
    /* dW2[D,F] += trans(dout[T,D]) * hact[T,F];  db2 += colsum(dout) */
    me_linear_backward(NULL, me_params_grad(p, x->l2_w), me_params_grad(p, x->l2_b), dout, a->hact,
                       me_params_data(p, x->l2_w), t, f, d);
    float *dh = a->hact;
    /* dh[T,F] = dout[T,D] * W2[D,F] */
    me_matmul(0, 0, t, f, d, 1.0f, dout, d, me_params_data(p, x->l2_w), f, 0.0f, dh, f);
    me_prof_end(ME_PROF_LINEAR2, m);
    m = me_prof_begin();
    if (drop > 0.0f) me_dropout_backward(dh, dh, a->mask_act, tf, drop);
    if (e->cfg.activation == ME_ACT_GELU)
        me_gelu_grad_inplace(dh, a->hpre, tf);
    else
        me_relu_grad_inplace(dh, a->hpre, tf);
    me_prof_end(ME_PROF_ELEMENTWISE, m);
    ME_PROF(ME_PROF_LINEAR1, linear_backward(dinp, accumulate, me_params_grad(p, x->l1_w), me_params_grad(p, x->l1_b),
                                             dh, inp, me_params_data(p, x->l1_w), t, d, f));
}

/* Backward of the self-attention sub-block: dout[T,D] -> parameter grads, dinp[T,D] (+)= dL/dinp as
 * for the FFN (dinp may be NULL). dattn[T,D] is workspace; the qkv gradient goes to hpre when it is
 * large enough (the FFN backward, which needs hpre, has run by then). Both are set, not added to, so
 * neither is cleared first. */
static void self_attention_backward(me_encoder *e, me_params *p, me_layer_acts *a, const me_layer_index *x,
                                    const float *inp, const float *dout, float *dinp, int accumulate, float *dattn,
                                    float drop) {
    int t = e->b * e->s, d = e->cfg.d_model;
    float *dqkv = e->dqkv ? e->dqkv : a->hpre;
    ME_PROF(ME_PROF_OUT_PROJ, linear_backward(dattn, 0, me_params_grad(p, x->out_w), me_params_grad(p, x->out_b),
                                              dout, a->attn, me_params_data(p, x->out_w), t, d, d));
    ME_PROF(ME_PROF_ATTENTION, me_attention_backward(dqkv, e->dprobs, dattn, a->qkv, a->probs, a->probs_drop, e->b,
                                                     e->s, d, e->cfg.n_heads, drop));
    ME_PROF(ME_PROF_QKV, linear_backward(dinp, accumulate, me_params_grad(p, x->in_w), me_params_grad(p, x->in_b),
                                         dqkv, inp, me_params_data(p, x->in_w), t, d, 3 * d));
}

/* dst[T,D] = src with dropout's backward (mask, 1/(1-p)) applied when drop > 0; elementwise. */
static void drop_grad(float *dst, const float *src, const uint8_t *mask, size_t n, float drop) {
    if (drop > 0.0f)
        me_dropout_backward(dst, src, mask, n, drop);
    else if (dst != src)
        memcpy(dst, src, n * sizeof(float));
}

/* Tells the owner of e->ready that the gradients at [from, total) are final. */
static void grads_ready(const me_encoder *e, const me_params *p, int first_final) {
    if (e->ready) e->ready(e->ready_ctx, p->t[first_final].offset);
}

void me_encoder_backward(me_encoder *e, me_params *p, float *dx, const float *dy) {
    const me_model_config *c = &e->cfg;
    int t = e->b * e->s, d = c->d_model;
    size_t td = (size_t)t * d, bytes = td * sizeof(float);
    float drop = e->training ? c->dropout : 0.0f;
    float *g = e->g[0], *gnext = e->g[1];
    me_prof_mark m;
    if (e->norm_w >= 0) {
        const float *last = c->norm_first ? e->acts[c->n_layers - 1].res2 : e->acts[c->n_layers - 1].ln2_out;
        ME_PROF(ME_PROF_LAYERNORM,
                me_layernorm_backward_set(g, NULL, me_params_grad(p, e->norm_w), me_params_grad(p, e->norm_b), dy,
                                          last, me_params_data(p, e->norm_w), e->fn_mean, e->fn_rstd, t, d));
        grads_ready(e, p, e->norm_w);
    } else {
        ME_PROF(ME_PROF_ELEMENTWISE, memcpy(g, dy, bytes));
    }
    for (int l = c->n_layers - 1; l >= 0; l--) {
        me_layer_acts *a = &e->acts[l];
        const me_layer_index *li = &e->li[l];
        /* g = dL/d(layer output); gnext receives dL/d(layer input) unless nobody needs it */
        int need_dx = l > 0 || dx != NULL;
        if (!c->norm_first) {
            /* out = LN2(res2); res2 = ln1 + dropout(FFN(ln1)): dL/dres2 goes to both branches, dln takes
             * the skip's copy and the FFN's input gradient is added to it */
            ME_PROF(ME_PROF_LAYERNORM,
                    me_layernorm_backward_set(e->dres, e->dln, me_params_grad(p, li->n2_w), me_params_grad(p, li->n2_b),
                                              g, a->res2, me_params_data(p, li->n2_w), a->ln2_mean, a->ln2_rstd, t,
                                              d));
            if (drop > 0.0f) ME_PROF(ME_PROF_ELEMENTWISE, drop_grad(e->dres, e->dres, a->mask2, td, drop));
            ffn_backward(e, p, a, li, a->ln1_out, e->dres, e->dln, 1, drop);
            /* ln1 = LN1(res1); res1 = x + dropout(SA(x)): the skip's copy goes to gnext when wanted; g is
             * dead now and serves as workspace */
            ME_PROF(ME_PROF_LAYERNORM,
                    me_layernorm_backward_set(e->dres, need_dx ? gnext : NULL, me_params_grad(p, li->n1_w),
                                              me_params_grad(p, li->n1_b), e->dln, a->res1,
                                              me_params_data(p, li->n1_w), a->ln1_mean, a->ln1_rstd, t, d));
            if (drop > 0.0f) ME_PROF(ME_PROF_ELEMENTWISE, drop_grad(e->dres, e->dres, a->mask1, td, drop));
            /* linear1, linear2, norm1 and norm2 are done: the layer's tensors from linear1.weight on */
            grads_ready(e, p, li->l1_w);
            self_attention_backward(e, p, a, li, a->inp, e->dres, need_dx ? gnext : NULL, 1, g, drop);
        } else {
            /* out = res2 = res1 + dropout(FFN(LN2(res1))) */
            m = me_prof_begin();
            memcpy(e->dres, g, bytes); /* dL/dres1, to be completed */
            drop_grad(g, g, a->mask2, td, drop);
            me_prof_end(ME_PROF_ELEMENTWISE, m);
            ffn_backward(e, p, a, li, a->ln2_out, g, e->dln, 0, drop);
            ME_PROF(ME_PROF_LAYERNORM,
                    me_layernorm_backward(e->dres, me_params_grad(p, li->n2_w), me_params_grad(p, li->n2_b), e->dln,
                                          a->res1, me_params_data(p, li->n2_w), a->ln2_mean, a->ln2_rstd, t, d));
            /* res1 = x + dropout(SA(LN1(x))) */
            m = me_prof_begin();
            if (need_dx) memcpy(gnext, e->dres, bytes);
            drop_grad(e->dres, e->dres, a->mask1, td, drop);
            me_prof_end(ME_PROF_ELEMENTWISE, m);
            self_attention_backward(e, p, a, li, a->ln1_out, e->dres, e->dln, 0, g, drop);
            /* LN1's input gradient goes to gnext; with no dx wanted, g (dead) takes it so that the
             * gamma and beta gradients are still formed */
            ME_PROF(ME_PROF_LAYERNORM,
                    me_layernorm_backward(need_dx ? gnext : g, me_params_grad(p, li->n1_w), me_params_grad(p, li->n1_b),
                                          e->dln, a->inp, me_params_data(p, li->n1_w), a->ln1_mean, a->ln1_rstd, t,
                                          d));
        }
        grads_ready(e, p, li->in_w); /* the whole layer */
        float *tmp = g;
        g = gnext;
        gnext = tmp;
    }
    if (dx) ME_PROF(ME_PROF_ELEMENTWISE, me_add_inplace(dx, g, td));
}
