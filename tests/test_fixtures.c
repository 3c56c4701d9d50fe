/* The encoder stack against PyTorch (float64) fixtures made by tests/fixtures/make_fixtures.py:
 * y, dx and every parameter gradient within 1e-5 of each tensor's largest magnitude. Also runs the
 * `minienc forward` command on one case and compares its output file. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minienc/config.h"
#include "minienc/encoder.h"
#include "minienc/safetensors.h"

#define FIXTURE_RTOL 1e-5

static const char *cases[] = {"tiny_post_relu", "odd_gelu_mask", "one_head_seq1", "pre_ln_final", "post_final_eps",
                              "wide"};

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
    /* weights of a d_model 12 model against a config that says d_model 8 */
    snprintf(cmd, sizeof cmd,
             "%s forward %s/tests/fixtures/encoder/tiny_post_relu.ini --weights "
             "%s/tests/fixtures/encoder/odd_gelu_mask.weights.safetensors --input "
             "%s/tests/fixtures/encoder/tiny_post_relu.io.safetensors --output /tmp/minienc-never-written.safetensors",
             me_test_bin(), src, src, src);
    int rc = me_run_capture(cmd, out, sizeof out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "minienc: error: "));
    assert_non_null(strstr(out, "layers.0.self_attn.in_proj_weight"));
    assert_non_null(strstr(out, "[36, 12]"));
    assert_non_null(strstr(out, "[24, 8]"));
    assert_int_equal(me_run_capture("test ! -e /tmp/minienc-never-written.safetensors", NULL, 0), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encoder_should_match_pytorch_float64_on_every_fixture),
        cmocka_unit_test(forward_command_should_write_pytorchs_outputs),
        cmocka_unit_test(forward_command_should_name_a_tensor_whose_shape_disagrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
