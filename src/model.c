#include "minienc/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "minienc/ops.h"

#include "internal.h"

/* *acc += a * b; returns 0 on size_t overflow. */
static int mac(size_t *acc, size_t a, size_t b) {
    size_t prod;
    if (!me_mul_ok(a, b, &prod) || prod > (size_t)-1 - *acc) return 0;
    *acc += prod;
    return 1;
}

int me_model_param_counts(const me_model_config *c, me_param_counts *out) {
    me_param_counts n = {0};
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff, layers = (size_t)c->n_layers, dd;
    size_t norms = 2 * layers + (c->final_norm ? 1 : 0), layer = 0;
    int ok = me_mul_ok(d, d, &dd) && mac(&n.attention, dd, 4) && mac(&n.attention, d, 4) && /* 4d² + 4d */
             mac(&n.ffn, d, 2 * f) && mac(&n.ffn, f + d, 1) &&                           /* 2dF + F + d */
             mac(&n.norm, d, 2) && mac(&n.layernorm, norms, n.norm) &&                   /* 2d */
             mac(&layer, n.attention, 1) && mac(&layer, n.ffn, 1) && mac(&layer, n.norm, 2) &&
             mac(&n.total, layer, layers) && (!c->final_norm || mac(&n.total, n.norm, 1));
    if (ok && c->vocab_size > 0) {
        size_t v = (size_t)c->vocab_size, cl = (size_t)(c->n_classes > 0 ? c->n_classes : c->vocab_size);
        ok = mac(&n.embeddings, v, d) && (c->positional != ME_POS_LEARNED || mac(&n.embeddings, (size_t)c->max_len, d)) &&
             mac(&n.head, cl, d + 1) && mac(&n.total, n.embeddings, 1) && mac(&n.total, n.head, 1);
    }
    if (!ok) memset(&n, 0, sizeof n);
    *out = n;
    return ok;
}

size_t me_model_param_count(const me_model_config *c) {
    me_param_counts n;
    return me_model_param_counts(c, &n) ? n.total : 0;
}

/* "model.d_model = 512 (configs/x.ini:3), model.vocab_size = ..." for the size keys a user set. */
static void size_keys(const me_config *cfg, char *buf, size_t cap) {
    const struct {
        const char *key;
        long value;
    } keys[] = {{"model.d_model", cfg->model.d_model},       {"model.d_ff", cfg->model.d_ff},
                {"model.n_layers", cfg->model.n_layers},     {"model.vocab_size", cfg->model.vocab_size},
                {"model.n_classes", cfg->model.n_classes},   {"model.max_len", cfg->model.max_len}};
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && used < cap; i++) {
        const char *origin = me_config_origin(cfg, keys[i].key);
        if (strcmp(origin, "default") == 0 && i > 0) continue;
        int n = snprintf(buf + used, cap - used, "%s%s = %ld (%s)", used ? ", " : "", keys[i].key, keys[i].value,
                         origin);
        if (n < 0) break;
        used += (size_t)n;
    }
}

/* me_model_build, with the values borrowed from data when it is not NULL */
static me_status build(me_model *m, const me_config *cfg, float *data, me_error *err) {
    memset(m, 0, sizeof *m);
    m->cfg = cfg->model;
    m->task = cfg->data.task;
    m->embed = m->pos = m->head_w = m->head_b = -1;
    me_params_init(&m->params);
    const me_model_config *c = &m->cfg;
    if (c->vocab_size > 0 && c->n_classes <= 0) m->cfg.n_classes = c->vocab_size;
    size_t count = me_model_param_count(c);
    /* values, gradients and two AdamW moments: 16 bytes per parameter (a replica: its gradients, 4) */
    double need = (double)count * (data ? 4.0 : 16.0);
    char keys[1024];
    size_keys(cfg, keys, sizeof keys);
    if (count == 0)
        return me_error_set(err, ME_ERR_CONFIG, "%s: the parameter count overflows size_t, expected a model that fits "
                            "in memory", keys);
    me_status st = me_refuse_beyond_memory(need, 0.0, NULL, err, "%s: %zu parameters need %.1f GiB for %s", keys,
                                           count, me_gib(need),
                                           data ? "a thread shard's gradients" : "values, gradients and AdamW state");
    if (st) return st;
    size_t d = (size_t)c->d_model;
    if (c->vocab_size > 0) {
        size_t se[2] = {(size_t)c->vocab_size, d}, sp[2] = {(size_t)c->max_len, d};
        if ((st = me_params_add(&m->params, "embed.weight", 2, se, ME_PARAM_EMBED, &m->embed, err))) goto fail;
        if (c->positional == ME_POS_LEARNED &&
            (st = me_params_add(&m->params, "pos_embed.weight", 2, sp, ME_PARAM_EMBED, &m->pos, err)))
            goto fail;
    }
    if ((st = me_encoder_register(&m->enc, &m->params, c->vocab_size > 0 ? "encoder." : "", c, err))) goto fail;
    if (c->vocab_size > 0) {
        size_t sw[2] = {(size_t)m->cfg.n_classes, d}, sb[1] = {(size_t)m->cfg.n_classes};
        if ((st = me_params_add(&m->params, "head.weight", 2, sw, 0, &m->head_w, err)) ||
            (st = me_params_add(&m->params, "head.bias", 1, sb, ME_PARAM_BIAS, &m->head_b, err)))
            goto fail;
    }
    if (data) me_params_borrow_data(&m->params, data); /* before the allocation: the gradient block alone */
    if ((st = me_params_alloc(&m->params, err))) goto fail;
    return ME_OK;
fail:
    me_model_free(m);
    return st;
}

me_status me_model_build(me_model *m, const me_config *cfg, me_error *err) { return build(m, cfg, NULL, err); }

me_status me_model_build_replica(me_model *m, const me_config *cfg, float *data, me_error *err) {
    return build(m, cfg, data, err);
}

void me_model_init_weights(me_model *m, me_rng *rng) {
    me_params *p = &m->params;
    /* nn.Embedding: N(0, 1) */
    if (m->embed >= 0)
        for (size_t i = 0; i < p->t[m->embed].count; i++) me_params_data(p, m->embed)[i] = me_rng_normal(rng);
    if (m->pos >= 0)
        for (size_t i = 0; i < p->t[m->pos].count; i++) me_params_data(p, m->pos)[i] = me_rng_normal(rng);
    me_encoder_init_weights(&m->enc, p, rng);
    if (m->head_w >= 0) {
        /* nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias */
        float bound = 1.0f / sqrtf((float)m->cfg.d_model);
        for (size_t i = 0; i < p->t[m->head_w].count; i++)
            me_params_data(p, m->head_w)[i] = bound * (2.0f * me_rng_uniform(rng) - 1.0f);
        for (size_t i = 0; i < p->t[m->head_b].count; i++)
            me_params_data(p, m->head_b)[i] = bound * (2.0f * me_rng_uniform(rng) - 1.0f);
    }
}

me_status me_model_alloc(me_model *m, int max_b, int max_s, me_error *err) {
    const me_model_config *c = &m->cfg;
    /* activations and tables, on top of the parameters, gradients and AdamW state already taken (an
     * activation size that overflows is refused by me_encoder_alloc) */
    size_t act = me_encoder_activation_bytes(c, max_b, max_s, NULL, NULL);
    /* x, dx, dout [T,D] and the logits and their probabilities [T,C], with room to spare */
    double need = (double)act + 4.0 * sizeof(float) * (double)max_b * max_s *
                                    (c->d_model + 2 * (c->n_classes > 0 ? c->n_classes : 1));
    if (c->vocab_size > 0 && c->positional == ME_POS_SINUSOIDAL) need += sizeof(float) * (double)c->max_len * c->d_model;
    if (act > 0 && me_refuse_beyond_memory(need, 16.0 * (double)m->params.total, "; lower train.batch_size or "
                                           "model.max_len", err, "batch %d x seq %d needs %.1f GiB of activations and "
                                           "tables (d_model %d, d_ff %d, %d layers, max_len %d)", max_b, max_s,
                                           me_gib(need), c->d_model, c->d_ff, c->n_layers, c->max_len))
        return ME_ERR_CONFIG;
    me_status st = me_encoder_alloc(&m->enc, max_b, max_s, err);
    if (st) return st;
    size_t t = (size_t)max_b * max_s, d = (size_t)c->d_model, cl = (size_t)(c->n_classes > 0 ? c->n_classes : 1);
    m->max_b = max_b;
    m->max_s = max_s;
    m->x = me_alloc(t * d * sizeof(float));
    m->dx = me_alloc(t * d * sizeof(float));
    m->dout = me_alloc(t * d * sizeof(float));
    m->pooled = me_alloc((size_t)max_b * d * sizeof(float));
    m->dpooled = me_alloc((size_t)max_b * d * sizeof(float));
    m->logits = me_alloc(t * cl * sizeof(float));
    m->probs = me_alloc(t * cl * sizeof(float));
    if (c->vocab_size > 0 && c->positional == ME_POS_SINUSOIDAL) {
        m->sin_pos = me_alloc((size_t)c->max_len * d * sizeof(float));
        if (m->sin_pos) {
            /* PE(pos, 2i) = sin(pos / 10000^(2i/D)), PE(pos, 2i+1) = cos(pos / 10000^(2i/D)) */
            for (int ps = 0; ps < c->max_len; ps++)
                for (size_t i = 0; i < d; i += 2) {
                    double angle = ps / pow(10000.0, (double)i / (double)d);
                    m->sin_pos[ps * d + i] = (float)sin(angle);
                    if (i + 1 < d) m->sin_pos[ps * d + i + 1] = (float)cos(angle);
                }
        }
    }
    if (!m->x || !m->dx || !m->dout || !m->pooled || !m->dpooled || !m->logits || !m->probs ||
        (c->vocab_size > 0 && c->positional == ME_POS_SINUSOIDAL && !m->sin_pos))
        return me_error_set(err, ME_ERR_NOMEM, "cannot allocate model activations for batch %d x seq %d", max_b,
                            max_s);
    return ME_OK;
}

/* probs[R,C] = softmax of each row of logits[R,C]; returns the summed -log p[target] over rows whose
 * target is >= 0 and counts them; right counts argmax == target. */
static double softmax_xent(float *probs, const float *logits, const int32_t *targets, size_t rows, int c,
                           size_t *counted, size_t *right) {
    double loss = 0.0;
    for (size_t r = 0; r < rows; r++) {
        const float *z = logits + r * (size_t)c;
        float *pr = probs + r * (size_t)c;
        int arg = 0;
        for (int j = 1; j < c; j++)
            if (z[j] > z[arg]) arg = j;
        float mx = z[arg];
        double sum = 0.0;
        for (int j = 0; j < c; j++) sum += exp((double)(z[j] - mx));
        int32_t tg = targets[r];
        if (tg >= 0) {
            loss += log(sum) - (double)(z[tg] - mx);
            (*counted)++;
            if (arg == tg) (*right)++;
        }
        double inv = 1.0 / sum;
        for (int j = 0; j < c; j++) pr[j] = (float)(exp((double)(z[j] - mx)) * inv);
    }
    return loss;
}

double me_model_forward(me_model *m, const int32_t *tokens, const uint8_t *pad, const int32_t *targets, int b,
                        int s, int training, const me_dropout_key *drop, size_t *correct) {
    const me_model_config *c = &m->cfg;
    me_params *p = &m->params;
    size_t d = (size_t)c->d_model, t = (size_t)b * s;
    m->b = b;
    m->s = s;
    m->tokens = tokens;
    m->targets = targets;
    m->pad = pad;
    /* x[b,s,:] = embed[token] + position[s] */
    const float *emb = me_params_data(p, m->embed);
    const float *pos = m->pos >= 0 ? me_params_data(p, m->pos) : m->sin_pos;
    for (size_t i = 0; i < t; i++) {
        const float *e = emb + (size_t)tokens[i] * d, *q = pos + (i % (size_t)s) * d;
        float *x = m->x + i * d;
        for (size_t j = 0; j < d; j++) x[j] = e[j] + q[j];
    }
    const float *out = me_encoder_forward(&m->enc, p, m->x, pad, b, s, training, drop);
    int cl = c->n_classes;
    size_t counted = 0, right = 0;
    double loss;
    if (m->task == ME_TASK_TAG) {
        /* logits[T,C] = out[T,D] * trans(head.weight[C,D]) + head.bias */
        me_linear_forward(m->logits, out, me_params_data(p, m->head_w), me_params_data(p, m->head_b), (int)t, (int)d,
                          cl);
        loss = softmax_xent(m->probs, m->logits, targets, t, cl, &counted, &right);
    } else {
        /* pooled[b,:] = mean over non-padded s of out[b,s,:] */
        for (int bi = 0; bi < b; bi++) {
            float *pl = m->pooled + (size_t)bi * d;
            memset(pl, 0, d * sizeof(float));
            int n = 0;
            for (int si = 0; si < s; si++) {
                if (pad && pad[bi * s + si]) continue;
                const float *o = out + ((size_t)bi * s + si) * d;
                for (size_t j = 0; j < d; j++) pl[j] += o[j];
                n++;
            }
            float inv = n ? 1.0f / (float)n : 0.0f;
            for (size_t j = 0; j < d; j++) pl[j] *= inv;
        }
        me_linear_forward(m->logits, m->pooled, me_params_data(p, m->head_w), me_params_data(p, m->head_b), b,
                          (int)d, cl);
        loss = softmax_xent(m->probs, m->logits, targets, (size_t)b, cl, &counted, &right);
    }
    m->n_targets = counted;
    m->loss_sum = loss;
    m->loss = counted ? loss / (double)counted : NAN;
    if (correct) *correct = right;
    return m->loss;
}

void me_model_top_k(const me_model *m, int k, int32_t *idx, float *p) {
    int cl = m->cfg.n_classes;
    size_t rows = m->task == ME_TASK_TAG ? (size_t)m->b * (size_t)m->s : (size_t)m->b;
    for (size_t r = 0; r < rows; r++) {
        const float *z = m->probs + r * (size_t)cl; /* [C] */
        int32_t *out = idx + r * (size_t)k;
        /* insertion into the k best so far: strictly greater moves up, so equal values keep class order */
        int have = 0;
        for (int j = 0; j < cl; j++) {
            if (have == k && !(z[j] > z[out[k - 1]])) continue;
            int at = have < k ? have++ : k - 1;
            while (at > 0 && z[j] > z[out[at - 1]]) {
                out[at] = out[at - 1];
                at--;
            }
            out[at] = j;
        }
        if (p)
            for (int i = 0; i < k; i++) p[r * (size_t)k + (size_t)i] = z[out[i]];
    }
}

void me_model_backward(me_model *m) { me_model_backward_shard(m, m->n_targets); }

void me_model_backward_shard(me_model *m, size_t total_targets) {
    const me_model_config *c = &m->cfg;
    me_params *p = &m->params;
    int b = m->b, s = m->s, cl = c->n_classes;
    size_t d = (size_t)c->d_model, t = (size_t)b * s;
    if (m->n_targets == 0 || total_targets == 0) return;
    float inv = 1.0f / (float)total_targets;
    size_t rows = m->task == ME_TASK_TAG ? t : (size_t)b;
    /* dlogits = (softmax - onehot(target)) / n_targets, zero for ignored rows (in place in probs) */
    for (size_t r = 0; r < rows; r++) {
        float *z = m->probs + r * (size_t)cl;
        int32_t tg = m->targets[r];
        if (tg < 0) {
            memset(z, 0, (size_t)cl * sizeof(float));
            continue;
        }
        for (int j = 0; j < cl; j++) z[j] = (z[j] - (j == tg ? 1.0f : 0.0f)) * inv;
    }
    const float *out = m->enc.out;
    memset(m->dout, 0, t * d * sizeof(float));
    if (m->task == ME_TASK_TAG) {
        me_linear_backward(m->dout, me_params_grad(p, m->head_w), me_params_grad(p, m->head_b), m->probs, out,
                           me_params_data(p, m->head_w), (int)t, (int)d, cl);
    } else {
        memset(m->dpooled, 0, (size_t)b * d * sizeof(float));
        me_linear_backward(m->dpooled, me_params_grad(p, m->head_w), me_params_grad(p, m->head_b), m->probs,
                           m->pooled, me_params_data(p, m->head_w), b, (int)d, cl);
        for (int bi = 0; bi < b; bi++) {
            int n = 0;
            for (int si = 0; si < s; si++) n += !(m->pad && m->pad[bi * s + si]);
            float scale = n ? 1.0f / (float)n : 0.0f;
            for (int si = 0; si < s; si++) {
                if (m->pad && m->pad[bi * s + si]) continue;
                float *dst = m->dout + ((size_t)bi * s + si) * d;
                const float *src = m->dpooled + (size_t)bi * d;
                for (size_t j = 0; j < d; j++) dst[j] = src[j] * scale;
            }
        }
    }
    if (m->enc.ready) m->enc.ready(m->enc.ready_ctx, p->t[m->head_w].offset); /* the head is registered last */
    memset(m->dx, 0, t * d * sizeof(float));
    me_encoder_backward(&m->enc, p, m->dx, m->dout);
    float *gemb = me_params_grad(p, m->embed);
    float *gpos = m->pos >= 0 ? me_params_grad(p, m->pos) : NULL;
    for (size_t i = 0; i < t; i++) {
        const float *g = m->dx + i * d;
        float *ge = gemb + (size_t)m->tokens[i] * d;
        for (size_t j = 0; j < d; j++) ge[j] += g[j];
        if (gpos) {
            float *gp = gpos + (i % (size_t)s) * d;
            for (size_t j = 0; j < d; j++) gp[j] += g[j];
        }
    }
    if (m->enc.ready) m->enc.ready(m->enc.ready_ctx, 0);
}

void me_model_free(me_model *m) {
    me_encoder_free(&m->enc);
    me_params_free(&m->params);
    me_free(m->x);
    me_free(m->dx);
    me_free(m->dout);
    me_free(m->pooled);
    me_free(m->dpooled);
    me_free(m->logits);
    me_free(m->probs);
    me_free(m->sin_pos);
    memset(m, 0, sizeof *m);
    m->embed = m->pos = m->head_w = m->head_b = -1;
}
