/* Parameter counts from live tensors against independently written closed forms and against
 * PyTorch's own state_dict (the fixture weight files). */
#include "test_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minienc/count.h"
#include "minienc/model.h"
#include "minienc/safetensors.h"

/* Builds the model for a config file (+ overrides) and returns its count report. */
static void report_for(const char *file, const char **sets, int n_sets, me_count_report *r, me_model *m) {
    me_config cfg;
    me_error err = {0};
    char path[1024];
    me_config_defaults(&cfg);
    snprintf(path, sizeof path, "%s/%s", me_test_source_dir(), file);
    assert_int_equal(me_config_load(&cfg, path, &err), ME_OK);
    for (int i = 0; i < n_sets; i++) assert_int_equal(me_config_set(&cfg, sets[i], &err), ME_OK);
    assert_int_equal(me_config_validate(&cfg, &err), ME_OK);
    assert_int_equal(me_model_build(m, &cfg, &err), ME_OK);
    me_count_tensor *t = calloc((size_t)m->params.n, sizeof *t);
    int n = me_count_tensors_of_params(t, &m->params);
    assert_int_equal(n, m->params.n);
    assert_int_equal(me_count_build(r, t, n, &m->cfg, &err), ME_OK);
    free(t);
}

static void seed_block_should_count_3152384_with_2048_in_layernorms(void **state) {
    (void)state;
    me_count_report r;
    me_model m;
    report_for("configs/seed_block.ini", NULL, 0, &r, &m);
    assert_int_equal(r.total, 3152384);
    assert_int_equal(r.layernorm, 2048);
    assert_int_equal(m.params.total, 3152384); /* one contiguous block */
    assert_true(r.all_ok);
    /* the seed's comparison table was wrong: attention has 1,050,624 (biases included), FFN 2,099,712 */
    int found = 0;
    for (int i = 0; i < r.n; i++) {
        if (strcmp(r.groups[i].name, "layers.0 attention") == 0) assert_int_equal(r.groups[i].live, 1050624), found++;
        if (strcmp(r.groups[i].name, "layers.0 FFN") == 0) assert_int_equal(r.groups[i].live, 2099712), found++;
    }
    assert_int_equal(found, 2);
    me_count_free(&r);
    me_model_free(&m);
}

static void six_layers_should_hold_12288_layernorm_parameters(void **state) {
    (void)state;
    me_count_report r;
    me_model m;
    report_for("configs/paper_base.ini", NULL, 0, &r, &m);
    assert_int_equal(r.layernorm, 12288);
    assert_int_equal(r.total, 6 * 3152384);
    assert_true(r.all_ok);
    me_count_free(&r);
    me_model_free(&m);
}

static void bert_layers_should_hold_3072_and_4096_layernorm_parameters(void **state) {
    (void)state;
    me_count_report r;
    me_model m;
    report_for("configs/bert_base_layer.ini", NULL, 0, &r, &m);
    assert_int_equal(r.layernorm, 3072);
    assert_int_equal(r.total, 4 * 768 * 768 + 4 * 768 + 2 * 768 * 3072 + 3072 + 768 + 4 * 768);
    me_count_free(&r);
    me_model_free(&m);
    report_for("configs/bert_large_layer.ini", NULL, 0, &r, &m);
    assert_int_equal(r.layernorm, 4096);
    assert_int_equal(r.total, 12596224);
    me_count_free(&r);
    me_model_free(&m);
}

static void full_model_should_add_embeddings_positions_head_and_final_norm(void **state) {
    (void)state;
    const char *sets[] = {"model.vocab_size=100", "model.n_classes=7", "model.max_len=32", "model.final_norm=true"};
    me_count_report r;
    me_model m;
    report_for("configs/seed_block.ini", sets, 4, &r, &m);
    size_t d = 512;
    assert_int_equal(r.total, 3152384 + 2 * d + 100 * d + 32 * d + 7 * d + 7);
    assert_int_equal(r.layernorm, 3 * 2 * d);
    assert_true(r.all_ok);
    assert_true(me_params_find(&m.params, "encoder.layers.0.norm1.weight") >= 0);
    assert_true(me_params_find(&m.params, "encoder.norm.bias") >= 0);
    assert_true(me_params_find(&m.params, "embed.weight") >= 0);
    assert_true(me_params_find(&m.params, "pos_embed.weight") >= 0);
    assert_true(me_params_find(&m.params, "head.bias") >= 0);
    me_count_free(&r);
    me_model_free(&m);
    const char *sin_sets[] = {"model.vocab_size=100", "model.positional=sinusoidal"};
    report_for("configs/seed_block.ini", sin_sets, 2, &r, &m);
    assert_int_equal(r.total, 3152384 + 100 * d + 100 * d + 100);
    assert_true(me_params_find(&m.params, "pos_embed.weight") < 0);
    me_count_free(&r);
    me_model_free(&m);
}

static void a_tensor_missing_from_the_live_set_should_fail_the_audit(void **state) {
    (void)state;
    me_model_config c = {.d_model = 4, .n_heads = 2, .d_ff = 8, .n_layers = 1};
    me_count_tensor t[2] = {{.name = "layers.0.norm1.weight", .ndim = 1, .shape = {4}, .count = 4},
                            {.name = "layers.0.mystery", .ndim = 1, .shape = {3}, .count = 3}};
    me_count_report r;
    assert_int_equal(me_count_build(&r, t, 2, &c, NULL), ME_OK);
    assert_false(r.all_ok);
    assert_string_equal(r.unknown, "layers.0.mystery");
    me_count_free(&r);
}

/* count --json on a config lists exactly the names and shapes of PyTorch's state_dict (fixture). */
static void count_json_should_list_pytorchs_names_shapes_and_total(void **state) {
    (void)state;
    char cmd[2048], *out = malloc(1 << 20), path[1024];
    const char *src = me_test_source_dir();
    snprintf(cmd, sizeof cmd, "%s count %s/tests/fixtures/encoder/pre_ln_final.ini --json", me_test_bin(), src);
    assert_int_equal(me_run_capture(cmd, out, 1 << 20), 0);
    cJSON *root = cJSON_Parse(out);
    assert_non_null(root);
    me_st_file w;
    snprintf(path, sizeof path, "%s/tests/fixtures/encoder/pre_ln_final.weights.safetensors", src);
    assert_int_equal(me_st_read(&w, path, NULL), ME_OK);
    cJSON *tensors = cJSON_GetObjectItem(root, "tensors");
    assert_int_equal(cJSON_GetArraySize(tensors), w.n);
    size_t total = 0;
    for (int i = 0; i < w.n; i++) total += w.tensors[i].count;
    assert_int_equal((size_t)cJSON_GetNumberValue(cJSON_GetObjectItem(root, "total")), total);
    cJSON *it;
    cJSON_ArrayForEach(it, tensors) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(it, "name"));
        const me_st_tensor *t = me_st_find(&w, name);
        if (!t) {
            print_error("count lists '%s', which PyTorch's state_dict lacks\n", name);
            fail();
        }
        cJSON *shape = cJSON_GetObjectItem(it, "shape");
        assert_int_equal(cJSON_GetArraySize(shape), t->ndim);
        for (int d = 0; d < t->ndim; d++)
            assert_int_equal((size_t)cJSON_GetNumberValue(cJSON_GetArrayItem(shape, d)), t->shape[d]);
    }
    /* LayerNorm: 2 layers x 2 norms + final, each 2 x 16 */
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(root, "layernorm")), 5 * 2 * 16);
    cJSON_Delete(root);
    me_st_free(&w);
    /* and on the PyTorch file itself (config inferred from shapes) */
    snprintf(cmd, sizeof cmd, "%s count %s --json", me_test_bin(), path);
    assert_int_equal(me_run_capture(cmd, out, 1 << 20), 0);
    root = cJSON_Parse(out);
    assert_non_null(root);
    assert_int_equal((size_t)cJSON_GetNumberValue(cJSON_GetObjectItem(root, "total")), total);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(root, "ok")));
    cJSON_Delete(root);
    free(out);
}

static void count_table_should_show_formula_live_and_ok_for_layernorm(void **state) {
    (void)state;
    char cmd[2048], out[16384];
    snprintf(cmd, sizeof cmd, "%s count %s/configs/seed_block.ini", me_test_bin(), me_test_source_dir());
    assert_int_equal(me_run_capture(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "LayerNorm γ+β: 2 norms × 2 × 512 = 2,048  live 2,048"));
    assert_non_null(strstr(out, "= 3,152,384  live 3,152,384"));
}

/* The closed forms worked by hand for a full model: d 6, F 10, L 2, final norm, V 7, C 3, M 5. */
static void param_counts_should_match_the_formulas_worked_by_hand_and_refuse_overflow(void **state) {
    (void)state;
    me_model_config c;
    memset(&c, 0, sizeof c);
    c.d_model = 6, c.n_heads = 2, c.d_ff = 10, c.n_layers = 2, c.final_norm = 1;
    c.vocab_size = 7, c.n_classes = 3, c.max_len = 5, c.positional = ME_POS_LEARNED;
    me_param_counts n;
    assert_int_equal(me_model_param_counts(&c, &n), 1);
    assert_int_equal(n.attention, 4 * 36 + 4 * 6);   /* 168 */
    assert_int_equal(n.ffn, 2 * 6 * 10 + 10 + 6);    /* 136 */
    assert_int_equal(n.norm, 12);
    assert_int_equal(n.layernorm, 5 * 12);           /* 2 layers x 2 + final */
    assert_int_equal(n.embeddings, 7 * 6 + 5 * 6);   /* 72 */
    assert_int_equal(n.head, 3 * 6 + 3);             /* 21 */
    assert_int_equal(n.total, 2 * (168 + 136 + 24) + 12 + 72 + 21);
    assert_int_equal(me_model_param_count(&c), 761);
    c.positional = ME_POS_SINUSOIDAL, c.n_classes = 0; /* no position table; C = V */
    assert_int_equal(me_model_param_counts(&c, &n), 1);
    assert_int_equal(n.embeddings, 42);
    assert_int_equal(n.head, 7 * 6 + 7);

    /* d = F = 2^31 - 1 with 2^31 - 1 layers: the per-layer count fits, the total does not */
    c.d_model = c.d_ff = c.n_layers = 2147483647;
    assert_int_equal(me_model_param_counts(&c, &n), 0);
    assert_int_equal(n.total, 0);
    assert_int_equal(n.attention, 0); /* nothing half-filled */
    assert_int_equal(me_model_param_count(&c), 0);
    me_count_report r;
    me_error err = {0};
    assert_int_equal(me_count_build(&r, NULL, 0, &c, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "the parameter count overflows size_t"));
    assert_null(r.groups);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seed_block_should_count_3152384_with_2048_in_layernorms),
        cmocka_unit_test(param_counts_should_match_the_formulas_worked_by_hand_and_refuse_overflow),
        cmocka_unit_test(six_layers_should_hold_12288_layernorm_parameters),
        cmocka_unit_test(bert_layers_should_hold_3072_and_4096_layernorm_parameters),
        cmocka_unit_test(full_model_should_add_embeddings_positions_head_and_final_norm),
        cmocka_unit_test(a_tensor_missing_from_the_live_set_should_fail_the_audit),
        cmocka_unit_test(count_json_should_list_pytorchs_names_shapes_and_total),
        cmocka_unit_test(count_table_should_show_formula_live_and_ok_for_layernorm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
