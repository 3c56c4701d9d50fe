/* Tests for comparing runs: grouping (configs that differ only in the seed or the thread count form one
 * group; --by keys; labels naming what differs), each group's curves as mean and min–max at the steps all
 * its runs have (against sums worked here), runs of different depths and widths (what is left out and
 * said so), the outlier map and table against planted outliers, JSON, the charts and the command.
 * Every run directory is synthetic: config.ini, metrics.csv and history.safetensors written here. */
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "minienc/compare.h"
#include "minienc/history.h"
#include "minienc/metrics.h"
#include "minienc/params.h"

#include "file.h"

typedef struct {
    char dir[512];
    int keep;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    fx->keep = me_make_output_dir(fx->dir, sizeof fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    if (!fx->keep) me_remove_tree(fx->dir);
    free(fx);
    return 0;
}

/* A synthetic run in fx->dir/name: config.ini (d_model d, n_layers layers, the given --set values),
 * metrics.csv with `steps` rows whose loss is loss0 / step and, every 5 steps, validation accuracy
 * acc_at(step) = min(1, acc_slope * step); history.safetensors with snapshots every 5 steps in which γ
 * moves by gamma_rate * step on every dimension (dim `outlier` of layer 0's norm1 by 20 times as much,
 * when outlier >= 0) and β by -gamma_rate * step. */
typedef struct {
    const char *name;
    int d, layers;
    const char *sets[4];
    long steps;
    double loss0, acc_slope, gamma_rate;
    int outlier;
} run_spec;

static void make_run(const fixture *fx, const run_spec *rs) {
    char dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/%s", fx->dir, rs->name);
    me_error err = {0};
    assert_int_equal(me_file_mkdir_p(dir, &err), ME_OK);
    me_config *cfg = malloc(sizeof *cfg);
    assert_non_null(cfg);
    me_config_defaults(cfg);
    char set[800];
    snprintf(set, sizeof set, "model.d_model=%d", rs->d);
    assert_int_equal(me_config_set(cfg, set, &err), ME_OK);
    assert_int_equal(me_config_set(cfg, "model.n_heads=2", &err), ME_OK);
    snprintf(set, sizeof set, "model.n_layers=%d", rs->layers);
    assert_int_equal(me_config_set(cfg, set, &err), ME_OK);
    assert_int_equal(me_config_set(cfg, "model.vocab_size=8", &err), ME_OK);
    snprintf(set, sizeof set, "train.steps=%ld", rs->steps);
    assert_int_equal(me_config_set(cfg, set, &err), ME_OK);
    for (int i = 0; i < 4 && rs->sets[i]; i++) assert_int_equal(me_config_set(cfg, rs->sets[i], &err), ME_OK);
    snprintf(set, sizeof set, "log.out_dir=%s", dir);
    assert_int_equal(me_config_set(cfg, set, &err), ME_OK);
    assert_int_equal(me_config_validate(cfg, &err), ME_OK);
    char *text = NULL;
    assert_int_equal(me_config_to_string(cfg, 0, &text, &err), ME_OK);
    snprintf(path, sizeof path, "%s/config.ini", dir);
    assert_int_equal(me_file_write_atomic(path, text, strlen(text), &err), ME_OK);
    free(text);
    free(cfg);

    me_metrics_log log;
    assert_int_equal(me_metrics_log_init(&log, &err), ME_OK);
    for (long s = 1; s <= rs->steps; s++) {
        me_metrics_row row = {s, rs->loss0 / (double)s, 1e-3, 1.0, 1000.0, NAN, NAN};
        if (s % 5 == 0) {
            row.valid_loss = 2 * rs->loss0 / (double)s;
            row.valid_acc = fmin(1.0, rs->acc_slope * (double)s);
        }
        assert_int_equal(me_metrics_log_append(&log, &row, &err), ME_OK);
    }
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    assert_int_equal(me_metrics_log_write(&log, path, &err), ME_OK);
    me_metrics_log_free(&log);

    me_params p;
    me_params_init(&p);
    size_t d = (size_t)rs->d;
    for (int l = 0; l < rs->layers; l++)
        for (int k = 1; k <= 2; k++) {
            char name[ME_NAME_MAX];
            snprintf(name, sizeof name, "encoder.layers.%d.norm%d.weight", l, k);
            assert_int_equal(me_params_add(&p, name, 1, &d, ME_PARAM_NORM | ME_PARAM_GAMMA, NULL, &err), ME_OK);
            snprintf(name, sizeof name, "encoder.layers.%d.norm%d.bias", l, k);
            assert_int_equal(me_params_add(&p, name, 1, &d, ME_PARAM_NORM | ME_PARAM_BIAS, NULL, &err), ME_OK);
        }
    assert_int_equal(me_params_alloc(&p, &err), ME_OK);
    me_history h;
    assert_int_equal(me_history_init(&h, &p, &err), ME_OK);
    for (long s = 0; s <= rs->steps; s += 5) {
        for (int t = 0; t < p.n; t++) {
            float *x = me_params_data(&p, t);
            for (size_t j = 0; j < d; j++) x[j] = t % 2 == 0 ? (float)(1.0 + rs->gamma_rate * s) : (float)(-rs->gamma_rate * s);
        }
        if (rs->outlier >= 0) me_params_data(&p, 0)[rs->outlier] = (float)(1.0 + 20 * rs->gamma_rate * s);
        assert_int_equal(me_history_record(&h, &p, s, &err), ME_OK);
    }
    snprintf(path, sizeof path, "%s/history.safetensors", dir);
    assert_int_equal(me_history_write(&h, path, &err), ME_OK);
    me_history_free(&h);
    me_params_free(&p);
}

static void load(const fixture *fx, me_compare *c, const char *const *names, int n) {
    char paths[16][700];
    const char *ptr[16];
    for (int i = 0; i < n; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s", fx->dir, names[i]);
        ptr[i] = paths[i];
    }
    me_error err = {0};
    if (me_compare_load(c, ptr, n, 3.0, &err) != ME_OK) fail_msg("%s", err.msg);
}

/* post-LN and pre-LN, two seeds each; one of them ran with another thread count */
static void make_study(const fixture *fx) {
    run_spec runs[4] = {
        {"post1", 16, 2, {"model.norm_first=false", "train.seed=1"}, 20, 2.0, 0.05, 0.01, 3},
        {"post2", 16, 2, {"model.norm_first=false", "train.seed=2", "train.threads=3"}, 20, 4.0, 0.04, 0.02, -1},
        {"pre1", 16, 2, {"model.norm_first=true", "train.seed=1"}, 20, 1.0, 0.1, 0.001, 3},
        {"pre2", 16, 2, {"model.norm_first=true", "train.seed=2"}, 20, 3.0, 0.02, 0.003, 3},
    };
    for (int i = 0; i < 4; i++) make_run(fx, &runs[i]);
}

static void runs_differing_only_in_seed_and_threads_should_form_one_group(void **state) {
    fixture *fx = *state;
    make_study(fx);
    me_compare c;
    const char *names[] = {"post1", "pre1", "post2", "pre2", "post1"}; /* post1 twice: loaded once */
    load(fx, &c, names, 5);
    assert_int_equal(c.n_runs, 4);
    me_error err = {0};
    assert_int_equal(me_compare_group_by(&c, NULL, 0, &err), ME_OK);
    assert_int_equal(c.n_groups, 2);
    assert_string_equal(c.groups[0].label, "norm_first=false");
    assert_string_equal(c.groups[1].label, "norm_first=true");
    assert_int_equal(c.groups[0].n, 2);
    assert_string_equal(c.runs[c.groups[0].runs[1]].name, "post2");
    assert_int_equal(c.n_by, 1);
    assert_string_equal(c.by[0], "model.norm_first");

    /* by a key they share: one group, labelled with it */
    const char *by[] = {"train.lr"};
    assert_int_equal(me_compare_group_by(&c, by, 1, &err), ME_OK);
    assert_int_equal(c.n_groups, 1);
    assert_string_equal(c.groups[0].label, "lr=0.001");
    /* by the seed: two groups, each mixing post- and pre-LN */
    const char *seed[] = {"train.seed"};
    assert_int_equal(me_compare_group_by(&c, seed, 1, &err), ME_OK);
    assert_int_equal(c.n_groups, 2);
    assert_string_equal(c.groups[1].label, "seed=2");
    const char *bad[] = {"model.norm_frist"};
    assert_int_equal(me_compare_group_by(&c, bad, 1, &err), ME_ERR_USAGE);
    assert_non_null(strstr(err.msg, "did you mean 'model.norm_first'"));
    me_compare_free(&c);
}

static void curves_should_be_the_mean_and_range_at_the_steps_all_runs_have(void **state) {
    fixture *fx = *state;
    run_spec a = {"a", 16, 1, {"train.seed=1"}, 30, 2.0, 0.02, 0.01, -1};
    run_spec b = {"b", 16, 1, {"train.seed=2"}, 20, 6.0, 0.04, 0.03, -1}; /* a shorter run */
    make_run(fx, &a);
    make_run(fx, &b);
    me_compare c;
    const char *names[] = {"a", "b"};
    load(fx, &c, names, 2);
    me_error err = {0};
    /* they differ in train.steps too: apart by default, together when grouped by a key they share */
    assert_int_equal(me_compare_group_by(&c, NULL, 0, &err), ME_OK);
    assert_int_equal(c.n_groups, 2);
    assert_string_equal(c.groups[1].label, "steps=20");
    const char *by[] = {"train.lr"};
    assert_int_equal(me_compare_group_by(&c, by, 1, &err), ME_OK);
    assert_int_equal(c.n_groups, 1);
    assert_string_equal(c.groups[0].label, "lr=0.001");

    me_compare_series s;
    assert_int_equal(me_compare_curve(&c, 0, ME_COMPARE_TRAIN_LOSS, 1, &s, &err), ME_OK);
    assert_int_equal(s.n, 20); /* steps 1..20: the ones both runs have */
    assert_int_equal(s.runs, 2);
    for (size_t i = 0; i < s.n; i++) {
        double step = (double)(i + 1), la = 2.0 / step, lb = 6.0 / step;
        assert_true(s.x[i] == step);
        assert_true(fabs(s.mean[i] - (la + lb) / 2) < 1e-7);
        assert_true(fabs(s.lo[i] - la) < 1e-7 && fabs(s.hi[i] - lb) < 1e-7);
    }
    me_compare_series_free(&s);
    assert_int_equal(me_compare_curve(&c, 0, ME_COMPARE_VALID_ACC, 1, &s, &err), ME_OK);
    assert_int_equal(s.n, 4); /* evaluations at 5, 10, 15, 20 */
    assert_true(s.x[3] == 20 && fabs(s.mean[3] - (0.4 + 0.8) / 2) < 1e-7);
    me_compare_series_free(&s);

    /* γ drift at step 20: every dimension moved by rate * 20, so ||.|| = rate * 20 * sqrt(16) */
    assert_int_equal(me_compare_norm_curve(&c, 0, "layers.0.norm1", ME_COMPARE_GAMMA_DRIFT, &s, &err), ME_OK);
    assert_int_equal(s.n, 5); /* snapshots 0, 5, 10, 15, 20 */
    assert_true(fabs(s.lo[4] - 0.01 * 20 * 4) < 1e-5 && fabs(s.hi[4] - 0.03 * 20 * 4) < 1e-5);
    me_compare_series_free(&s);
    assert_int_equal(me_compare_norm_curve(&c, 0, "layers.0.norm2", ME_COMPARE_BETA_MAXABS, &s, &err), ME_OK);
    assert_true(fabs(s.mean[2] - (0.01 + 0.03) * 10 / 2) < 1e-6);
    me_compare_series_free(&s);
    /* the final drift is each run's own last snapshot: 30 and 20 steps */
    me_compare_stat d = me_compare_final_drift(&c, 0, "layers.0.norm1", 1);
    assert_int_equal(d.n, 2);
    double da = 0.01 * 30 * 4, db = 0.03 * 20 * 4;
    assert_true(fabs(d.mean - (da + db) / 2) < 1e-5);
    assert_true(fabs(d.sd - fabs(da - db) / sqrt(2.0)) < 1e-5); /* sample std of two values */
    me_compare_free(&c);
}

static void runs_of_different_sizes_should_share_what_both_define(void **state) {
    fixture *fx = *state;
    run_spec shallow = {"shallow", 16, 1, {"train.seed=1"}, 10, 1.0, 0.1, 0.01, -1};
    run_spec deep = {"deep", 16, 2, {"train.seed=2"}, 10, 1.0, 0.1, 0.01, -1};
    run_spec wide = {"wide", 32, 2, {"train.seed=1"}, 10, 1.0, 0.1, 0.01, -1};
    make_run(fx, &shallow);
    make_run(fx, &deep);
    make_run(fx, &wide);
    me_compare c;
    const char *names[] = {"shallow", "deep", "wide"};
    load(fx, &c, names, 3);
    me_error err = {0};
    assert_int_equal(me_compare_group_by(&c, NULL, 0, &err), ME_OK);
    assert_int_equal(c.n_groups, 3);
    assert_string_equal(c.groups[0].label, "d_model=16, n_layers=1");
    /* LayerNorm positions across the depth, over all runs */
    assert_int_equal(c.n_norms, 4);
    assert_string_equal(c.norms[2], "layers.1.norm1");
    me_compare_series s;
    assert_int_equal(me_compare_norm_curve(&c, 0, "layers.1.norm1", ME_COMPARE_GAMMA_MEAN, &s, &err), ME_OK);
    assert_int_equal(s.runs, 0); /* the one-layer group has none */
    me_compare_series_free(&s);
    assert_int_equal(me_compare_final_drift(&c, 0, "layers.1.norm1", 1).n, 0);
    assert_int_equal(me_compare_final_drift(&c, 2, "layers.1.norm1", 1).n, 1);

    /* grouped by the seed: shallow (d_model 16, one layer) with wide (32, two layers), and deep alone */
    const char *by[] = {"train.seed"};
    assert_int_equal(me_compare_group_by(&c, by, 1, &err), ME_OK);
    assert_int_equal(c.n_groups, 2);
    float *v;
    int *rows, nr, nd;
    assert_int_equal(me_compare_outlier_map(&c, 0, &v, &rows, &nr, &nd, &err), ME_OK);
    assert_int_equal(nr, 0); /* d_model 16 and 32 share no map */
    assert_int_equal(me_compare_outlier_map(&c, 1, &v, &rows, &nr, &nd, &err), ME_OK);
    assert_int_equal(nr, 4);
    assert_int_equal(nd, 16);
    free(v);
    free(rows);
    /* the drift across the depth is defined for the shallow-and-wide group where both have a LayerNorm */
    assert_int_equal(me_compare_final_drift(&c, 0, "layers.0.norm2", 0).n, 2);
    assert_int_equal(me_compare_final_drift(&c, 0, "layers.1.norm2", 0).n, 0);
    char out[800];
    snprintf(out, sizeof out, "%s/charts-sizes", fx->dir);
    me_report_files files;
    assert_int_equal(me_compare_plots(&c, out, &files, &err), ME_OK);
    me_report_files_free(&files);
    int said_map = 0, said_norm = 0;
    for (int i = 0; i < c.n_notes; i++) {
        said_map += strstr(c.notes[i], "outliers.png: group 'seed=1' left out") != NULL;
        said_norm += strstr(c.notes[i], "layers.1.norm1.png: group 'seed=1' left out") != NULL;
    }
    assert_int_equal(said_map, 1);
    assert_int_equal(said_norm, 1);
    me_compare_free(&c);
}

static void outliers_should_be_counted_per_group_in_the_map_table_and_json(void **state) {
    fixture *fx = *state;
    make_study(fx);
    me_compare c;
    const char *names[] = {"post1", "post2", "pre1", "pre2"};
    load(fx, &c, names, 4);
    me_error err = {0};
    assert_int_equal(me_compare_group_by(&c, NULL, 0, &err), ME_OK);
    /* dim 3 of layers.0.norm1 moves 20 times as fast: an outlier in post1, pre1 and pre2 (post2 has none) */
    float *v;
    int *rows, nr, nd;
    assert_int_equal(me_compare_outlier_map(&c, 0, &v, &rows, &nr, &nd, &err), ME_OK);
    assert_int_equal(nr, 4);
    assert_int_equal(nd, 16);
    assert_string_equal(c.norms[rows[0]], "layers.0.norm1");
    for (int r = 0; r < nr; r++)
        for (int d = 0; d < nd; d++) assert_true(v[r * nd + d] == (r == 0 && d == 3 ? 0.5f : 0.0f));
    free(v);
    free(rows);
    assert_int_equal(me_compare_outlier_map(&c, 1, &v, &rows, &nr, &nd, &err), ME_OK);
    assert_true(v[3] == 1.0f);
    free(v);
    free(rows);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(me_compare_print(&c, f, &err), ME_OK);
    fclose(f);
    assert_non_null(strstr(text, "group 1: norm_first=false (2 runs: post1, post2)"));
    assert_non_null(strstr(text, "layers.0.norm1                   dim 3 (1/2)"));
    assert_non_null(strstr(text, "layers.0.norm1                   dim 3 (2/2)"));
    /* final accuracy: post1 min(1, 0.05 * 20) = 1, post2 0.04 * 20 = 0.8: 90% ± 14.14% */
    assert_non_null(strstr(text, "final validation accuracy  90.00% ± 14.14%"));
    /* 99% first reached at step 20 by post1 (1.0), never by post2 */
    assert_non_null(strstr(text, "steps to 99% accuracy      20 (1 of 2 runs got there)"));
    free(text);

    cJSON *root = me_compare_json(&c);
    assert_non_null(root);
    cJSON *g1 = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "groups"), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(g1, "values"), "model.norm_first")->valuestring, "true");
    cJSON *o = cJSON_GetArrayItem(cJSON_GetObjectItem(g1, "outliers"), 0);
    assert_string_equal(cJSON_GetObjectItem(o, "layernorm")->valuestring, "layers.0.norm1");
    cJSON *dim = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "dims"), 0);
    assert_int_equal((int)cJSON_GetObjectItem(dim, "dim")->valuedouble, 3);
    assert_int_equal((int)cJSON_GetObjectItem(dim, "runs")->valuedouble, 2);
    cJSON *acc = cJSON_GetObjectItem(g1, "acc99_step");
    assert_int_equal((int)cJSON_GetObjectItem(acc, "reached")->valuedouble, 1); /* pre1: 0.1 * 10 = 1 at step 10 */
    assert_int_equal((int)cJSON_GetObjectItem(acc, "mean")->valuedouble, 10);
    assert_string_equal(cJSON_GetObjectItem(root, "band")->valuestring, "min-max");
    cJSON_Delete(root);
    me_compare_free(&c);
}

static void compare_command_should_draw_the_charts_and_refuse_what_is_not_a_run(void **state) {
    fixture *fx = *state;
    make_study(fx);
    char cmd[3000], out[8192], charts[700];
    snprintf(charts, sizeof charts, "%s/charts", fx->dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' compare post1 post2 pre1 pre2 --out '%s' 2>&1", fx->dir, me_test_bin(),
             charts);
    int code = me_run_capture(cmd, out, sizeof out);
    if (code != 0) fail_msg("exit %d: %s", code, out);
    assert_non_null(strstr(out, "4 runs in 2 groups by model.norm_first"));
    static const char *const files[] = {"curves.png", "layers.0.norm1.png", "layers.1.norm2.png", "drift.png",
                                        "outliers.png"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[800];
        snprintf(path, sizeof path, "%s/%s", charts, files[i]);
        if (me_file_probe(path) != ME_PATH_OTHER) fail_msg("%s was not written: %s", path, out);
    }
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' compare post1 --json --out '%s' 2>/dev/null", fx->dir, me_test_bin(),
             charts);
    assert_int_equal(me_run_capture(cmd, out, sizeof out), 0);
    cJSON *root = cJSON_Parse(out);
    if (!root) fail_msg("not JSON: %s", out);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "groups"), 0), "label")->valuestring,
                        "post1");
    cJSON_Delete(root);
    snprintf(cmd, sizeof cmd, "'%s' compare '%s' 2>&1", me_test_bin(), fx->dir);
    assert_int_equal(me_run_capture(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "neither a run directory"));
    snprintf(cmd, sizeof cmd, "'%s' compare '%s/post1' --by model.nope 2>&1", me_test_bin(), fx->dir);
    assert_int_equal(me_run_capture(cmd, out, sizeof out), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(runs_differing_only_in_seed_and_threads_should_form_one_group, setup, teardown),
        cmocka_unit_test_setup_teardown(curves_should_be_the_mean_and_range_at_the_steps_all_runs_have, setup, teardown),
        cmocka_unit_test_setup_teardown(runs_of_different_sizes_should_share_what_both_define, setup, teardown),
        cmocka_unit_test_setup_teardown(outliers_should_be_counted_per_group_in_the_map_table_and_json, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(compare_command_should_draw_the_charts_and_refuse_what_is_not_a_run, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
