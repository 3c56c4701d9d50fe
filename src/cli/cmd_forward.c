/* minienc forward: the encoder stack alone on tensors from files, with an optional backward pass. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "minienc/encoder.h"
#include "minienc/params.h"
#include "minienc/safetensors.h"

#include "internal.h"

/* Checks that a file tensor has exactly the expected shape; names both on a mismatch. */
static me_status expect_shape(const char *file, const me_st_tensor *t, int ndim, const size_t *shape,
                              me_error *err) {
    if (me_shape_equal(t->ndim, t->shape, ndim, shape)) return ME_OK;
    char got[96], want[96];
    me_shape_string(got, sizeof got, t->ndim, t->shape);
    me_shape_string(want, sizeof want, ndim, shape);
    return me_error_set(err, ME_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", file, t->name, got, want);
}

static me_status load_weights(me_params *p, const char *path, me_error *err) {
    me_st_file f;
    me_status st = me_st_read(&f, path, err);
    if (st) return st;
    for (int i = 0; i < p->n && !st; i++) {
        const me_tensor_info *ti = &p->t[i];
        const me_st_tensor *t = me_st_find(&f, ti->name);
        if (!t)
            st = me_error_set(err, ME_ERR_SHAPE, "%s: tensor '%s' is missing, expected one of shape [%zu%s]", path,
                              ti->name, ti->shape[0], ti->ndim == 2 ? ", ..." : "");
        else if (t->dtype != ME_DT_F32 && t->dtype != ME_DT_F64)
            st = me_error_set(err, ME_ERR_FORMAT, "%s: tensor '%s' is %s, expected F32", path, ti->name,
                              me_dtype_name(t->dtype));
        else if (!(st = expect_shape(path, t, ti->ndim, ti->shape, err)))
            me_st_to_f32(t, me_params_data(p, i));
    }
    for (int i = 0; i < f.n && !st; i++)
        if (me_params_find(p, f.tensors[i].name) < 0)
            st = me_error_set(err, ME_ERR_SHAPE, "%s: unexpected tensor '%s': the config's model has no such parameter",
                              path, f.tensors[i].name);
    me_st_free(&f);
    return st;
}

enum { OPT_WEIGHTS, OPT_INPUT, OPT_OUTPUT, OPT_SET, N_OPTS };
static const cli_option options[N_OPTS] = {
    [OPT_WEIGHTS] = {.name = "--weights", .kind = CLI_STRING, .value = "W", .required = 1,
                     .help = "encoder parameters named as nn.TransformerEncoder's state_dict"},
    [OPT_INPUT] = {.name = "--input", .kind = CLI_STRING, .value = "IN", .required = 1,
                   .help = "tensors x [B, S, d], optional dy [B, S, d] and key_padding_mask [B, S]"},
    [OPT_OUTPUT] = {.name = "--output", .kind = CLI_STRING, .value = "OUT", .required = 1,
                    .help = "the file for y, and with dy in IN also dx and grad.<name>"},
    [OPT_SET] = CLI_OPTION_SET,
};

static int cmd_forward(const cli_args *a) {
    const char *weights = a->text[OPT_WEIGHTS], *input = a->text[OPT_INPUT], *output = a->text[OPT_OUTPUT];
    me_error err = {0};
    me_config cfg;
    if (cli_load_config(&cfg, a->args[0], a, &err)) return cli_fail(&err);
    cli_set_threads(cfg.train.threads);
    me_model_config mc = cfg.model;
    mc.dropout = 0.0f;
    me_params p;
    me_params_init(&p);
    me_encoder e;
    me_st_file in;
    memset(&in, 0, sizeof in);
    me_st_writer w;
    me_st_writer_init(&w);
    float *x = NULL, *dy = NULL, *dx = NULL;
    uint8_t *pad = NULL;
    int code = 0;
    me_status st;
    if ((st = me_encoder_register(&e, &p, "", &mc, &err)) || (st = me_params_alloc(&p, &err)) ||
        (st = load_weights(&p, weights, &err)) || (st = me_st_read(&in, input, &err)))
        goto done;
    const me_st_tensor *tx = me_st_find(&in, "x"), *tdy = me_st_find(&in, "dy"),
                       *tm = me_st_find(&in, "key_padding_mask");
    if (!tx || tx->ndim != 3 || tx->shape[2] != (size_t)mc.d_model || tx->shape[0] == 0 || tx->shape[1] == 0 ||
        tx->shape[0] > 1000000 || tx->shape[1] > 1000000) {
        char got[96] = "missing";
        if (tx) me_shape_string(got, sizeof got, tx->ndim, tx->shape);
        st = me_error_set(&err, ME_ERR_SHAPE, "%s: tensor 'x' is %s, expected [B, S, %d] with B, S >= 1", input, got,
                          mc.d_model);
        goto done;
    }
    int b = (int)tx->shape[0], s = (int)tx->shape[1];
    size_t n = tx->count, ms[2] = {(size_t)b, (size_t)s};
    if (tdy && (st = expect_shape(input, tdy, 3, tx->shape, &err))) goto done;
    if (tm && (st = expect_shape(input, tm, 2, ms, &err))) goto done;
    if (tm && tm->dtype != ME_DT_U8 && tm->dtype != ME_DT_BOOL) {
        st = me_error_set(&err, ME_ERR_FORMAT, "%s: tensor 'key_padding_mask' is %s, expected U8 or BOOL", input,
                          me_dtype_name(tm->dtype));
        goto done;
    }
    x = malloc(n * sizeof *x);
    dx = calloc(n, sizeof *dx);
    dy = malloc(n * sizeof *dy);
    pad = tm ? malloc((size_t)b * s) : NULL;
    if (!x || !dx || !dy || (tm && !pad)) {
        st = me_error_set(&err, ME_ERR_NOMEM, "out of memory for %zu input values", n);
        goto done;
    }
    me_st_to_f32(tx, x);
    if (pad) {
        const uint8_t *src = tm->data;
        for (size_t i = 0; i < (size_t)b * s; i++) pad[i] = src[i] != 0;
    }
    if ((st = me_encoder_alloc(&e, b, s, &err))) goto done;
    const float *y = me_encoder_forward(&e, &p, x, pad, b, s, 0, NULL);
    if ((st = me_st_writer_add(&w, "y", ME_DT_F32, 3, tx->shape, y, &err))) goto done;
    if (tdy) {
        me_st_to_f32(tdy, dy);
        me_params_zero_grad(&p);
        me_encoder_backward(&e, &p, dx, dy);
        if ((st = me_st_writer_add(&w, "dx", ME_DT_F32, 3, tx->shape, dx, &err))) goto done;
        for (int i = 0; i < p.n; i++) {
            char name[ME_NAME_MAX + 8];
            snprintf(name, sizeof name, "grad.%s", p.t[i].name);
            if ((st = me_st_writer_add(&w, name, ME_DT_F32, p.t[i].ndim, p.t[i].shape, me_params_grad(&p, i), &err)))
                goto done;
        }
    }
    st = me_st_writer_write(&w, output, &err);
done:
    if (st) code = cli_fail(&err);
    me_st_writer_free(&w);
    me_st_free(&in);
    me_encoder_free(&e);
    me_params_free(&p);
    free(x), free(dx), free(dy), free(pad);
    return code;
}

const cli_command cli_forward = {
    .name = "forward", .args = "CONFIG.ini", .args_what = "CONFIG.ini", .min_args = 1, .max_args = 1,
    .options = options, .n_options = N_OPTS, .run = cmd_forward,
    .summary = "Run the encoder stack alone (dropout off); with dy in IN also the backward pass.",
};
