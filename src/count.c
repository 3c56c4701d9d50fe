#include "minienc/count.h"

#include "minienc/model.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Strips "encoder." so that bare and full-model names classify alike. */
static const char *enc_name(const char *name) {
    return strncmp(name, "encoder.", 8) == 0 ? name + 8 : name;
}

/* Group key of a tensor name, e.g. "layers.3 attention"; "" if unknown. */
static void group_of(const char *full, char *key, size_t cap) {
    const char *name = enc_name(full);
    int layer, used = 0;
    key[0] = '\0';
    if (sscanf(name, "layers.%d.%n", &layer, &used) == 1 && used > 0) {
        const char *rest = name + used;
        const char *kind = NULL;
        if (strncmp(rest, "self_attn.", 10) == 0) kind = "attention";
        else if (strncmp(rest, "linear1.", 8) == 0 || strncmp(rest, "linear2.", 8) == 0) kind = "FFN";
        else if (strncmp(rest, "norm1.", 6) == 0) kind = "norm1";
        else if (strncmp(rest, "norm2.", 6) == 0) kind = "norm2";
        if (kind) snprintf(key, cap, "layers.%d %s", layer, kind);
    } else if (strcmp(name, "norm.weight") == 0 || strcmp(name, "norm.bias") == 0) {
        snprintf(key, cap, "final norm");
    } else if (strcmp(full, "embed.weight") == 0 || strcmp(full, "pos_embed.weight") == 0) {
        snprintf(key, cap, "embeddings");
    } else if (strcmp(full, "head.weight") == 0 || strcmp(full, "head.bias") == 0) {
        snprintf(key, cap, "head");
    }
}

static int push(me_count_report *r, const char *name, size_t live) {
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->groups[i].name, name) == 0) {
            r->groups[i].live += live;
            return 1;
        }
    me_count_group *g = realloc(r->groups, (size_t)(r->n + 1) * sizeof *g);
    if (!g) return 0;
    r->groups = g;
    memset(&g[r->n], 0, sizeof g[r->n]);
    snprintf(g[r->n].name, sizeof g[r->n].name, "%s", name);
    g[r->n].live = live;
    r->n++;
    return 1;
}

/* Sets a group's closed-form count (from the config alone, through the model's formulas) and the
 * formula as text. */
static void set_formula(me_count_group *g, const me_model_config *c, const me_param_counts *n) {
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff;
    const char *kind = strrchr(g->name, ' ');
    kind = kind ? kind + 1 : g->name;
    if (strcmp(kind, "attention") == 0) {
        g->expected = n->attention;
        snprintf(g->formula, sizeof g->formula, "4 × %zu² + 4 × %zu", d, d);
    } else if (strcmp(kind, "FFN") == 0) {
        g->expected = n->ffn;
        snprintf(g->formula, sizeof g->formula, "2 × %zu × %zu + %zu + %zu", d, f, f, d);
    } else if (strcmp(kind, "norm1") == 0 || strcmp(kind, "norm2") == 0 || strcmp(g->name, "final norm") == 0) {
        g->expected = n->norm;
        snprintf(g->formula, sizeof g->formula, "2 × %zu", d);
    } else if (strcmp(g->name, "embeddings") == 0) {
        size_t v = (size_t)c->vocab_size, m = (size_t)c->max_len;
        g->expected = n->embeddings;
        if (c->positional == ME_POS_LEARNED)
            snprintf(g->formula, sizeof g->formula, "%zu × %zu + %zu × %zu", v, d, m, d);
        else
            snprintf(g->formula, sizeof g->formula, "%zu × %zu", v, d);
    } else if (strcmp(g->name, "head") == 0) {
        size_t cl = (size_t)(c->n_classes > 0 ? c->n_classes : c->vocab_size);
        g->expected = n->head;
        snprintf(g->formula, sizeof g->formula, "%zu × %zu + %zu", cl, d, cl);
    }
}

me_status me_count_build(me_count_report *r, const me_count_tensor *t, int n, const me_model_config *c,
                         me_error *err) {
    memset(r, 0, sizeof *r);
    me_param_counts counts;
    if (!me_model_param_counts(c, &counts))
        return me_error_set(err, ME_ERR_CONFIG,
                            "d_model %d, d_ff %d, %d layers, vocab_size %d, max_len %d: the parameter count overflows "
                            "size_t, expected a model that fits in memory",
                            c->d_model, c->d_ff, c->n_layers, c->vocab_size, c->max_len);
    r->all_ok = 1;
    /* every group the config implies exists, even when its tensors are missing (live 0 then) */
    char key[64];
    for (int l = 0; l < c->n_layers; l++) {
        const char *kinds[4] = {"attention", "FFN", "norm1", "norm2"};
        for (int k = 0; k < 4; k++) {
            snprintf(key, sizeof key, "layers.%d %s", l, kinds[k]);
            if (!push(r, key, 0)) goto nomem;
        }
    }
    if (c->final_norm && !push(r, "final norm", 0)) goto nomem;
    if (c->vocab_size > 0 && (!push(r, "embeddings", 0) || !push(r, "head", 0))) goto nomem;
    for (int i = 0; i < n; i++) {
        group_of(t[i].name, key, sizeof key);
        if (!key[0]) {
            if (!r->unknown[0]) snprintf(r->unknown, sizeof r->unknown, "%s", t[i].name);
            r->all_ok = 0;
            continue;
        }
        if (!push(r, key, t[i].count)) goto nomem;
        r->total += t[i].count;
        const char *base = enc_name(t[i].name);
        const char *dot = strrchr(base, '.');
        if (dot && (strstr(base, "norm1.") || strstr(base, "norm2.") || strncmp(base, "norm.", 5) == 0))
            r->layernorm += t[i].count;
    }
    for (int i = 0; i < r->n; i++) {
        set_formula(&r->groups[i], c, &counts);
        if (r->groups[i].expected != r->groups[i].live) r->all_ok = 0;
    }
    /* summaries */
    size_t norms = 2 * (size_t)c->n_layers + (c->final_norm ? 1 : 0), d = (size_t)c->d_model;
    if (!push(r, "LayerNorm γ+β", r->layernorm)) goto nomem;
    me_count_group *g = &r->groups[r->n - 1];
    g->summary = 1;
    g->expected = counts.layernorm;
    snprintf(g->formula, sizeof g->formula, "%zu norms × 2 × %zu", norms, d);
    if (g->expected != g->live) r->all_ok = 0;
    if (!push(r, "total", r->total)) goto nomem;
    g = &r->groups[r->n - 1];
    g->summary = 1;
    /* the closed-form total against the sum of every live tensor (unknown ones included) */
    g->expected = counts.total;
    int used = snprintf(g->formula, sizeof g->formula, "%d × (4 × %zu² + 2 × %zu × %zu + %zu + 9 × %zu)",
                        c->n_layers, d, d, (size_t)c->d_ff, (size_t)c->d_ff, d);
    if (c->final_norm) used += snprintf(g->formula + used, sizeof g->formula - (size_t)used, " + 2 × %zu", d);
    if (c->vocab_size > 0) {
        size_t cl = (size_t)(c->n_classes > 0 ? c->n_classes : c->vocab_size);
        used += snprintf(g->formula + used, sizeof g->formula - (size_t)used, " + %d × %zu", c->vocab_size, d);
        if (c->positional == ME_POS_LEARNED)
            used += snprintf(g->formula + used, sizeof g->formula - (size_t)used, " + %d × %zu", c->max_len, d);
        snprintf(g->formula + used, sizeof g->formula - (size_t)used, " + %zu × %zu + %zu", cl, d, cl);
    }
    if (g->expected != g->live) r->all_ok = 0;
    return ME_OK;
nomem:
    me_count_free(r);
    return me_error_set(err, ME_ERR_NOMEM, "out of memory building the parameter report");
}

me_status me_count_infer_config(me_model_config *c, const me_count_tensor *t, int n, me_error *err) {
    memset(c, 0, sizeof *c);
    c->positional = ME_POS_SINUSOIDAL;
    c->layer_norm_eps = 1e-5f;
    int max_layer = -1;
    for (int i = 0; i < n; i++) {
        const char *name = enc_name(t[i].name);
        int layer, used = 0;
        if (sscanf(name, "layers.%d.%n", &layer, &used) == 1 && used > 0) {
            /* every layer has tensors, so a valid index is below the number of tensors */
            if (layer < 0 || layer >= n)
                return me_error_set(err, ME_ERR_FORMAT, "tensor '%s': layer index %d with only %d tensors in the file",
                                    t[i].name, layer, n);
            if (layer > max_layer) max_layer = layer;
            if (strcmp(name + used, "linear1.weight") == 0 && t[i].ndim == 2) {
                c->d_ff = (int)t[i].shape[0];
                c->d_model = (int)t[i].shape[1];
            }
        } else if (strcmp(name, "norm.weight") == 0) {
            c->final_norm = 1;
        } else if (strcmp(t[i].name, "embed.weight") == 0 && t[i].ndim == 2) {
            c->vocab_size = (int)t[i].shape[0];
        } else if (strcmp(t[i].name, "pos_embed.weight") == 0 && t[i].ndim == 2) {
            c->max_len = (int)t[i].shape[0];
            c->positional = ME_POS_LEARNED;
        } else if (strcmp(t[i].name, "head.weight") == 0 && t[i].ndim == 2) {
            c->n_classes = (int)t[i].shape[0];
        }
    }
    for (int i = 0; i < n; i++)
        for (int d = 0; d < t[i].ndim; d++)
            if (t[i].shape[d] > (size_t)INT_MAX)
                return me_error_set(err, ME_ERR_FORMAT, "tensor '%s': dimension %zu is above %d", t[i].name,
                                    t[i].shape[d], INT_MAX);
    if (max_layer < 0 || c->d_model <= 0)
        return me_error_set(err, ME_ERR_FORMAT,
                            "no 'layers.N.linear1.weight' tensor of rank 2: cannot tell d_model and d_ff, "
                            "expected an encoder state_dict");
    c->n_layers = max_layer + 1;
    return ME_OK;
}

void me_count_free(me_count_report *r) {
    free(r->groups);
    memset(r, 0, sizeof *r);
}

static void set_row(me_count_tensor *t, const char *name, int ndim, const size_t *shape, size_t count) {
    t->name = name;
    t->ndim = ndim;
    memset(t->shape, 0, sizeof t->shape);
    for (int d = 0; d < ndim && d < 8; d++) t->shape[d] = shape[d];
    t->count = count;
}

int me_count_tensors_of_file(me_count_tensor *t, const me_st_file *f) {
    int n = 0;
    for (int i = 0; i < f->n; i++) {
        const me_st_tensor *s = &f->tensors[i];
        /* optimizer state and non-float tensors are not parameters */
        if (strncmp(s->name, "optim.", 6) == 0 || (s->dtype != ME_DT_F32 && s->dtype != ME_DT_F64)) continue;
        set_row(&t[n++], s->name, s->ndim, s->shape, s->count);
    }
    return n;
}

int me_count_tensors_of_params(me_count_tensor *t, const me_params *p) {
    for (int i = 0; i < p->n; i++) set_row(&t[i], p->t[i].name, p->t[i].ndim, p->t[i].shape, p->t[i].count);
    return p->n;
}
