/* The attention file format (see attention.h): writer and reader. */
#include "minienc/attention.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "minienc/safetensors.h"

#define LAYER_FMT "encoder.layers.%d.self_attn.weights"

me_status me_attention_alloc(me_attention *a, size_t n, int layers, int heads, int s, me_error *err) {
    memset(a, 0, sizeof *a);
    size_t per, total, ntok;
    if (n == 0 || layers < 1 || heads < 1 || s < 1)
        return me_error_set(err, ME_ERR_USAGE,
                            "attention: %zu inputs, %d layers, %d heads, length %d; expected all >= 1", n, layers,
                            heads, s);
    if (!me_mul_ok((size_t)s, (size_t)s, &per) || !me_mul_ok(per, (size_t)heads, &per) || !me_mul_ok(per, n, &per) ||
        !me_mul_ok(per, (size_t)layers, &total) || !me_mul_ok(total, sizeof(float), &total) ||
        !me_mul_ok(n, (size_t)s, &ntok) || !me_mul_ok(ntok, sizeof(int64_t), &ntok))
        return me_error_set(err, ME_ERR_NOMEM, "attention: %zu inputs x %d layers x %d heads x %d^2 overflows", n,
                            layers, heads, s);
    a->weights = calloc(1, total);
    a->tokens = malloc(ntok);
    if (!a->weights || !a->tokens) {
        me_attention_free(a);
        return me_error_set(err, ME_ERR_NOMEM, "attention: out of memory for %.1f MiB of weights",
                            (double)total / 1048576.0);
    }
    a->n = n;
    a->layers = layers;
    a->heads = heads;
    a->s = s;
    for (size_t i = 0; i < n * (size_t)s; i++) a->tokens[i] = -1;
    return ME_OK;
}

void me_attention_free(me_attention *a) {
    free(a->weights);
    free(a->tokens);
    memset(a, 0, sizeof *a);
}

int me_attention_len(const me_attention *a, size_t i) {
    int len = 0;
    while (len < a->s && a->tokens[i * (size_t)a->s + (size_t)len] >= 0) len++;
    return len;
}

me_status me_attention_write(const me_attention *a, const char *path, const char *checkpoint, int64_t step,
                             me_error *err) {
    me_st_writer w;
    me_st_writer_init(&w);
    char(*names)[64] = calloc((size_t)a->layers, sizeof *names);
    if (!names) return me_error_set(err, ME_ERR_NOMEM, "%s: out of memory", path);
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, step);
    me_status st = me_st_writer_meta(&w, "format", ME_ATTENTION_FORMAT, err);
    if (!st && checkpoint) st = me_st_writer_meta(&w, "checkpoint", checkpoint, err);
    if (!st) st = me_st_writer_meta(&w, "step", buf, err);
    size_t shape[4] = {a->n, (size_t)a->heads, (size_t)a->s, (size_t)a->s}, tshape[2] = {a->n, (size_t)a->s};
    for (int l = 0; l < a->layers && !st; l++) {
        snprintf(names[l], sizeof names[l], LAYER_FMT, l);
        st = me_st_writer_add(&w, names[l], ME_DT_F32, 4, shape, me_attention_at(a, l, 0), err);
    }
    if (!st) st = me_st_writer_add(&w, "tokens", ME_DT_I64, 2, tshape, a->tokens, err);
    if (!st) st = me_st_writer_write(&w, path, err);
    me_st_writer_free(&w);
    free(names);
    return st;
}

me_status me_attention_read(me_attention *a, const char *path, me_error *err) {
    memset(a, 0, sizeof *a);
    me_st_file f;
    me_status st = me_st_read(&f, path, err);
    if (st) return st;
    const me_st_tensor *tok = me_st_find(&f, "tokens"), *l0 = me_st_find(&f, "encoder.layers.0.self_attn.weights");
    int layers = 0;
    char name[64];
    if (!tok || tok->dtype != ME_DT_I64 || tok->ndim != 2 || tok->shape[0] == 0 || tok->shape[1] == 0 ||
        tok->shape[1] > INT32_MAX) {
        st = me_error_set(err, ME_ERR_FORMAT, "%s: tensor 'tokens' missing or not I64 [N, S], expected an attention "
                          "file written by minienc predict --attention", path);
        goto done;
    }
    if (!l0 || l0->ndim != 4 || l0->shape[1] == 0 || l0->shape[1] > INT32_MAX) {
        st = me_error_set(err, ME_ERR_FORMAT, "%s: tensor 'encoder.layers.0.self_attn.weights' missing or not "
                          "[N, H, S, S]", path);
        goto done;
    }
    for (;;) {
        snprintf(name, sizeof name, LAYER_FMT, layers);
        if (!me_st_find(&f, name)) break;
        layers++;
    }
    if (f.n != layers + 1) {
        st = me_error_set(err, ME_ERR_FORMAT, "%s: %d tensors besides 'tokens' and the layers 0..%d, expected the "
                          "layers numbered without gaps and nothing else", path, f.n - layers - 1, layers - 1);
        goto done;
    }
    size_t n = tok->shape[0];
    int s = (int)tok->shape[1], heads = (int)l0->shape[1];
    if ((st = me_attention_alloc(a, n, layers, heads, s, err))) goto done;
    for (int l = 0; l < layers && !st; l++) {
        snprintf(name, sizeof name, LAYER_FMT, l);
        const me_st_tensor *t = me_st_find(&f, name);
        if (t->dtype != ME_DT_F32 || t->ndim != 4 || t->shape[0] != n || t->shape[1] != (size_t)heads ||
            t->shape[2] != (size_t)s || t->shape[3] != (size_t)s) {
            char got[96];
            me_shape_string(got, sizeof got, t->ndim, t->shape);
            st = me_error_set(err, ME_ERR_FORMAT, "%s: tensor '%s' is %s %s, expected F32 [%zu, %d, %d, %d]", path,
                              name, me_dtype_name(t->dtype), got, n, heads, s, s);
            break;
        }
        me_st_to_f32(t, me_attention_at(a, l, 0));
    }
    if (!st) memcpy(a->tokens, tok->data, n * (size_t)s * sizeof(int64_t)); /* little-endian I64, as stored */
done:
    if (st) me_attention_free(a);
    me_st_free(&f);
    return st;
}
