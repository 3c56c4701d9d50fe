/* The encoder stack and the full model against PyTorch (float64) fixtures made by
 * tests/fixtures/make_fixtures.py: y, dx, logits, the loss and every parameter gradient within 1e-5 of
 * each tensor's largest magnitude, and the attention probabilities predictions keep within 1e-5 of
 * self_attn(..., need_weights=True, average_attn_weights=False). Also runs the `minienc forward`
 * command on one case and compares its output file. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "minienc/config.h"
#include "minienc/encoder.h"
#include "minienc/model.h"
#include "minienc/predict.h"
#include "minienc/safetensors.h"

#define FIXTURE_RTOL 1e-5

static const char *cases[] = {"tiny_post_relu", "odd_gelu_mask", "one_head_seq1", "pre_ln_final", "post_final_eps",
                              "wide"};
static const char *model_cases[] = {"tag_learned", "classify_sinusoidal", "tag_sinusoidal_odd"};

static float *tensor_f32(const me_st_file *f, const char *name, size_t *count) {
    const me_st_tensor *t = me_st_find(f, name);
    if (!t) {
        print_error("fixture tensor '%s' missing\n", name);
        fail();
    }
    float *x = malloc(t->count * sizeof *x + 1);
    assert_non_null(x);
    me_st_to_f32(t, x);
    if (count) *count = t->count;
    return x;
}

static void check_case(const char *name) {
    char path[1024];
    me_error err = {0};
    me_config cfg;
    me_config_defaults(&cfg);
    snprintf(path, sizeof path, "%s/tests/fixtures/encoder/%s.ini", me_test_source_dir(), name);
    if (me_config_load(&cfg, path, &err) || me_config_validate(&cfg, &err)) {
        print_error("%s\n", err.msg);
        fail();
    }
    me_params p;
    me_params_init(&p);
    me_encoder e;
    assert_int_equal(me_encoder_register(&e, &p, "", &cfg.model, &err), ME_OK);
    assert_int_equal(me_params_alloc(&p, &err), ME_OK);
    me_st_file w, io;
    snprintf(path, sizeof path, "%s/tests/fixtures/encoder/%s.weights.safetensors", me_test_source_dir(), name);
    assert_int_equal(me_st_read(&w, path, &err), ME_OK);
    assert_int_equal(w.n, p.n); /* the registry has exactly PyTorch's tensors */
    for (int i = 0; i < p.n; i++) {
        const me_st_tensor *t = me_st_find(&w, p.t[i].name);
        if (!t) {
            print_error("%s: PyTorch has no tensor named '%s'\n", name, p.t[i].name);
            fail();
        }
        assert_int_equal(t->ndim, p.t[i].ndim);
        for (int d = 0; d < t->ndim; d++) assert_int_equal(t->shape[d], p.t[i].shape[d]);
        me_st_to_f32(t, me_params_data(&p, i));
    }
    snprintf(path, sizeof path, "%s/tests/fixtures/encoder/%s.io.safetensors", me_test_source_dir(), name);
    assert_int_equal(me_st_read(&io, path, &err), ME_OK);
    const me_st_tensor *tx = me_st_find(&io, "x");
    assert_non_null(tx);
    int b = (int)tx->shape[0], s = (int)tx->shape[1];
    size_t n;
    float *x = tensor_f32(&io, "x", &n), *dy = tensor_f32(&io, "dy", NULL), *y_want = tensor_f32(&io, "y", NULL);
    float *dx_want = tensor_f32(&io, "dx", NULL), *dx = calloc(n, sizeof *dx);
    uint8_t *pad = NULL;
    const me_st_tensor *tm = me_st_find(&io, "key_padding_mask");
    if (tm) {
        pad = malloc(tm->count);
        for (size_t i = 0; i < tm->count; i++) pad[i] = ((const uint8_t *)tm->data)[i] != 0;
    }
    assert_int_equal(me_encoder_alloc(&e, b, s, &err), ME_OK);
    const float *y = me_encoder_forward(&e, &p, x, pad, b, s, 0, NULL);
    double worst = me_check_close(name, y, y_want, n, FIXTURE_RTOL);
    me_params_zero_grad(&p);
    me_encoder_backward(&e, &p, dx, dy);
    double r = me_check_close(name, dx, dx_want, n, FIXTURE_RTOL);
    if (r > worst) worst = r;
    for (int i = 0; i < p.n; i++) {
        char gname[ME_NAME_MAX + 8];
        snprintf(gname, sizeof gname, "grad.%s", p.t[i].name);
        size_t gn;
        float *g = tensor_f32(&io, gname, &gn);
        assert_int_equal(gn, p.t[i].count);
        r = me_check_close(gname, me_params_grad(&p, i), g, gn, FIXTURE_RTOL);
        if (r > worst) worst = r;
        free(g);
    }
    printf("  %-16s worst relative error %.2e (tolerance %.0e)\n", name, worst, FIXTURE_RTOL);
    free(x), free(dy), free(y_want), free(dx_want), free(dx), free(pad);
    me_st_free(&w);
    me_st_free(&io);
    me_encoder_free(&e);
    me_params_free(&p);
}

static void encoder_should_match_pytorch_float64_on_every_fixture(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(cases[i]);
}

/* ---- the full model ------------------------------------------------------------------------------ */

typedef struct {
    me_config cfg;
    me_model m;
    me_st_file io;
    int b, s;
    int32_t *tokens, *targets; /* [B,S]; targets [B,S] (tag) or [B] */
    uint8_t *pad;              /* [B,S] */
} model_fixture;

static void model_fixture_load(model_fixture *f, const char *name) {
    char path[1024];
    me_error err = {0};
    memset(f, 0, sizeof *f);
    me_config_defaults(&f->cfg);
    snprintf(path, sizeof path, "%s/tests/fixtures/model/%s.ini", me_test_source_dir(), name);
    if (me_config_load(&f->cfg, path, &err) || me_config_validate(&f->cfg, &err)) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_int_equal(me_model_build(&f->m, &f->cfg, &err), ME_OK);
    me_st_file w;
    snprintf(path, sizeof path, "%s/tests/fixtures/model/%s.weights.safetensors", me_test_source_dir(), name);
    assert_int_equal(me_st_read(&w, path, &err), ME_OK);
    assert_int_equal(w.n, f->m.params.n); /* the registry has exactly PyTorch's tensors */
    for (int i = 0; i < f->m.params.n; i++) {
        const me_tensor_info *ti = &f->m.params.t[i];
        const me_st_tensor *t = me_st_find(&w, ti->name);
        if (!t) {
            print_error("%s: PyTorch has no tensor named '%s'\n", name, ti->name);
            fail();
        }
        assert_int_equal(t->ndim, ti->ndim);
        for (int d = 0; d < t->ndim; d++) assert_int_equal(t->shape[d], ti->shape[d]);
        me_st_to_f32(t, me_params_data(&f->m.params, i));
    }
    me_st_free(&w);
    snprintf(path, sizeof path, "%s/tests/fixtures/model/%s.io.safetensors", me_test_source_dir(), name);
    assert_int_equal(me_st_read(&f->io, path, &err), ME_OK);
    const me_st_tensor *tt = me_st_find(&f->io, "tokens"), *tp = me_st_find(&f->io, "key_padding_mask");
    const me_st_tensor *tg = me_st_find(&f->io, "targets");
    assert_non_null(tt);
    assert_non_null(tp);
    assert_non_null(tg);
    f->b = (int)tt->shape[0];
    f->s = (int)tt->shape[1];
    size_t n = tt->count;
    f->tokens = malloc(n * sizeof *f->tokens);
    f->targets = malloc(n * sizeof *f->targets);
    f->pad = malloc(n);
    float *tmp = malloc(n * sizeof *tmp);
    me_st_to_f32(tt, tmp); /* small integers: exact in float */
    for (size_t i = 0; i < n; i++) f->tokens[i] = (int32_t)tmp[i];
    me_st_to_f32(tg, tmp);
    for (size_t i = 0; i < tg->count; i++) f->targets[i] = (int32_t)tmp[i];
    for (size_t i = 0; i < n; i++) f->pad[i] = ((const uint8_t *)tp->data)[i] != 0;
    free(tmp);
    assert_int_equal(me_model_alloc(&f->m, f->b, f->s, &err), ME_OK);
}

static void model_fixture_free(model_fixture *f) {
    me_model_free(&f->m);
    me_st_free(&f->io);
    free(f->tokens), free(f->targets), free(f->pad);
}

static void full_model_should_match_pytorch_float64_logits_loss_and_every_gradient(void **state) {
    (void)state;
    for (size_t c = 0; c < sizeof model_cases / sizeof model_cases[0]; c++) {
        const char *name = model_cases[c];
        model_fixture f;
        model_fixture_load(&f, name);
        me_params_zero_grad(&f.m.params);
        double loss = me_model_forward(&f.m, f.tokens, f.pad, f.targets, f.b, f.s, 0, NULL, NULL);
        me_model_backward(&f.m);
        size_t n;
        float *want = tensor_f32(&f.io, "logits", &n);
        size_t rows = f.cfg.data.task == ME_TASK_TAG ? (size_t)f.b * (size_t)f.s : (size_t)f.b;
        assert_int_equal(n, rows * (size_t)f.m.cfg.n_classes);
        double worst = me_check_close("logits", f.m.logits, want, n, FIXTURE_RTOL);
        free(want);
        const me_st_tensor *tl = me_st_find(&f.io, "loss");
        assert_non_null(tl);
        assert_int_equal(tl->dtype, ME_DT_F64);
        double want_loss;
        memcpy(&want_loss, tl->data, sizeof want_loss);
        double r = fabs(loss - want_loss) / fabs(want_loss);
        if (!(r <= FIXTURE_RTOL)) {
            print_error("%s: loss %.9g, PyTorch %.9g (relative error %.3g)\n", name, loss, want_loss, r);
            fail();
        }
        if (r > worst) worst = r;
        for (int i = 0; i < f.m.params.n; i++) {
            char gname[ME_NAME_MAX + 8];
            snprintf(gname, sizeof gname, "grad.%s", f.m.params.t[i].name);
            float *g = tensor_f32(&f.io, gname, &n);
            assert_int_equal(n, f.m.params.t[i].count);
            r = me_check_close(gname, me_params_grad(&f.m.params, i), g, n, FIXTURE_RTOL);
            if (r > worst) worst = r;
            free(g);
        }
        printf("  %-20s %d tensors, worst relative error %.2e (tolerance %.0e)\n", name, f.m.params.n, worst,
               FIXTURE_RTOL);
        model_fixture_free(&f);
    }
}

/* The attention that predictions keep, batch by batch (batch_size 1: each input at its own length;
 * the fixture's batch: padded to the longest), against PyTorch's per-head weights. */
static void predicted_attention_should_match_pytorchs_need_weights_and_be_zero_on_padding(void **state) {
    (void)state;
    for (size_t c = 0; c < sizeof model_cases / sizeof model_cases[0]; c++) {
        const char *name = model_cases[c];
        model_fixture f;
        model_fixture_load(&f, name);
        me_error err = {0};
        me_dataset ds;
        const me_model_config *mc = &f.m.cfg;
        assert_int_equal(me_dataset_init(&ds, f.cfg.data.task, mc->vocab_size, mc->n_classes, mc->max_len,
                                         ME_DATA_TARGETS_OPTIONAL, name, &err),
                         ME_OK);
        for (int b = 0; b < f.b; b++) { /* the fixture's inputs as lines: tokens up to the first padding */
            char line[512];
            size_t used = 0;
            for (int j = 0; j < f.s && !f.pad[b * f.s + j]; j++)
                used += (size_t)snprintf(line + used, sizeof line - used, "%s%d", j ? " " : "", f.tokens[b * f.s + j]);
            assert_int_equal(me_dataset_add_line(&ds, line, used, name, (size_t)b + 1, &err), ME_OK);
        }
        double worst = 0.0;
        int batches[2] = {1, f.b};
        for (int k = 0; k < 2; k++) {
            me_predict_options o = {.attention = 1};
            me_predictions out;
            assert_int_equal(me_predict_model(&f.m, &ds, batches[k], &o, &out, NULL, &err), ME_OK);
            const me_attention *a = &out.attention;
            int h = mc->n_heads, s = f.s;
            assert_int_equal(a->layers, mc->n_layers);
            assert_int_equal(a->heads, h);
            assert_int_equal(a->s, s);
            assert_int_equal((int)a->n, f.b);
            for (int l = 0; l < mc->n_layers; l++) {
                char tname[128];
                snprintf(tname, sizeof tname, "attention.encoder.layers.%d.self_attn.weights", l);
                size_t n;
                float *want = tensor_f32(&f.io, tname, &n); /* [B,H,S,S] */
                assert_int_equal(n, (size_t)f.b * h * s * s);
                for (int b = 0; b < f.b; b++) {
                    int len = (int)me_dataset_len(&ds, (size_t)b);
                    assert_int_equal(me_attention_len(a, (size_t)b), len);
                    const float *got = me_attention_at(a, l, (size_t)b); /* [H,S,S] */
                    for (int hi = 0; hi < h; hi++)
                        for (int q = 0; q < s; q++) {
                            const float *gr = got + ((size_t)hi * s + q) * s;
                            const float *wr = want + (((size_t)b * h + hi) * s + q) * s;
                            for (int key = 0; key < s; key++)
                                if ((q >= len || key >= len) && gr[key] != 0.0f) {
                                    print_error("%s layer %d input %d head %d: weight [%d,%d] = %g on padding, "
                                                "expected exactly 0\n", name, l, b, hi, q, key, (double)gr[key]);
                                    fail();
                                }
                            if (q >= len) continue; /* PyTorch computes rows of padding queries; the file zeroes them */
                            char what[400];
                            snprintf(what, sizeof what, "%s %s input %d head %d query %d", name, tname, b, hi, q);
                            double r = me_check_close(what, gr, wr, (size_t)s, FIXTURE_RTOL);
                            if (r > worst) worst = r;
                        }
                }
                free(want);
            }
            me_predictions_free(&out);
        }
        printf("  %-20s attention of %d layers, worst relative error %.2e (tolerance %.0e)\n", name, mc->n_layers,
               worst, FIXTURE_RTOL);
        me_dataset_free(&ds);
        model_fixture_free(&f);
    }
}

static void forward_command_should_write_pytorchs_outputs(void **state) {
    (void)state;
    char dir[256], cmd[4096], out[8192], path[512];
    me_make_temp_dir(dir, sizeof dir);
    const char *src = me_test_source_dir();
    snprintf(path, sizeof path, "%s/out.safetensors", dir);
    snprintf(cmd, sizeof cmd,
             "%s forward %s/tests/fixtures/encoder/odd_gelu_mask.ini --weights "
             "%s/tests/fixtures/encoder/odd_gelu_mask.weights.safetensors --input "
             "%s/tests/fixtures/encoder/odd_gelu_mask.io.safetensors --output %s",
             me_test_bin(), src, src, src, path);
    int rc = me_run_capture(cmd, out, sizeof out);
    if (rc != 0) print_error("%s\n", out);
    assert_int_equal(rc, 0);
    me_st_file got, want;
    me_error err;
    assert_int_equal(me_st_read(&got, path, &err), ME_OK);
    snprintf(path, sizeof path, "%s/tests/fixtures/encoder/odd_gelu_mask.io.safetensors", src);
    assert_int_equal(me_st_read(&want, path, &err), ME_OK);
    int compared = 0;
    for (int i = 0; i < got.n; i++) {
        const char *nm = got.tensors[i].name;
        if (strcmp(nm, "y") && strcmp(nm, "dx") && strncmp(nm, "grad.", 5)) continue;
        size_t n;
        float *a = tensor_f32(&got, nm, &n), *b = tensor_f32(&want, nm, NULL);
        me_check_close(nm, a, b, n, FIXTURE_RTOL);
        free(a), free(b);
        compared++;
    }
    assert_int_equal(compared, 2 + 2 * 12); /* y, dx and 12 gradients per layer for 2 layers */
    me_st_free(&got);
    me_st_free(&want);
    me_remove_tree(dir);
}

static void forward_command_should_name_a_tensor_whose_shape_disagrees(void **state) {
    (void)state;
    char cmd[4096], out[8192];
    const char *src = me_test_source_dir();
    char dir[] = "/tmp/minienc-fixtures.XXXXXX", never[64];
    assert_non_null(mkdtemp(dir));
    snprintf(never, sizeof never, "%s/never-written.safetensors", dir);
    /* weights of a d_model 12 model against a config that says d_model 8 */
    snprintf(cmd, sizeof cmd,
             "%s forward %s/tests/fixtures/encoder/tiny_post_relu.ini --weights "
             "%s/tests/fixtures/encoder/odd_gelu_mask.weights.safetensors --input "
             "%s/tests/fixtures/encoder/tiny_post_relu.io.safetensors --output %s",
             me_test_bin(), src, src, src, never);
    int rc = me_run_capture(cmd, out, sizeof out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "minienc: error: "));
    assert_non_null(strstr(out, "layers.0.self_attn.in_proj_weight"));
    assert_non_null(strstr(out, "[36, 12]"));
    assert_non_null(strstr(out, "[24, 8]"));
    assert_int_equal(access(never, F_OK), -1);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encoder_should_match_pytorch_float64_on_every_fixture),
        cmocka_unit_test(full_model_should_match_pytorch_float64_logits_loss_and_every_gradient),
        cmocka_unit_test(predicted_attention_should_match_pytorchs_need_weights_and_be_zero_on_padding),
        cmocka_unit_test(forward_command_should_write_pytorchs_outputs),
        cmocka_unit_test(forward_command_should_name_a_tensor_whose_shape_disagrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
