/* Tests for run reports: the inspect analysis on a synthetic history with planted dimensions, the PNG
 * charts (decode, size, determinism, 10 and 10,000 snapshots, d_model 16 and 512, skipped without the
 * font) and the `plot` / `inspect` commands. Every run directory is synthetic, built in a temp dir.
 * Set MINIENC_KEEP_PLOTS=DIR to keep the run directories for viewing. */
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stb/stb_image.h>

#include "minienc/history.h"
#include "minienc/ops.h"
#include "minienc/params.h"
#include "minienc/plot.h"
#include "minienc/report.h"

/* Planted in encoder.layers.0.norm1: γ dim JUMP_DIM jumps 1 -> 3 at snapshot S/2 (the largest drift
 * anywhere), γ dim OFF_DIM ramps 1 -> 0.01 (switched off), β dim RATE_DIM steps by 0.5 over a gap of
 * 10 steps (snapshot 2 -> 3) and later by 0.8 over the last gap of 100 steps (the larger |Δ| but the
 * smaller rate). Everything else moves by at most 0.03. */
enum { JUMP_DIM = 3, OFF_DIM = 5, RATE_DIM = 7 };

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

/* Steps 0, 10, 20, ... and a last snapshot 100 steps after the one before it (as a run whose length is
 * not a multiple of history_every). */
static int64_t synth_step(size_t s, size_t n_snap) {
    if (n_snap > 2 && s == n_snap - 1) return 10 * (int64_t)(n_snap - 2) + 100;
    return 10 * (int64_t)s;
}

/* Value of tensor t (0 = layers.0.norm1.weight, 1 = its bias, ...) dimension d at snapshot s. */
static float synth_value(int t, int gamma, size_t d, size_t s, size_t n_snap) {
    double f = n_snap > 1 ? (double)s / (double)(n_snap - 1) : 0.0;
    double v = gamma ? 1.0 + 0.02 * f * sin(1.7 * (double)d + t) : 0.03 * f * cos(0.9 * (double)d + t);
    if (t == 0 && d == JUMP_DIM && s >= n_snap / 2) v = 3.0;
    if (t == 0 && d == OFF_DIM) v = 1.0 - 0.99 * f;
    if (t == 1 && d == RATE_DIM) v = s < 3 ? 0.0 : s < n_snap - 1 ? 0.5 : 1.3;
    return (float)v;
}

/* A synthetic run: history of the first n_norms of (layer 0 norm1, norm2, final norm), d_model d,
 * n_snap snapshots, and a metrics.csv of n_metrics rows (validation every 10th row). */
static void make_run_norms(const char *dir, size_t d, size_t n_snap, size_t n_metrics, int n_norms) {
    mkdir(dir, 0755);
    static const char *const names[3] = {"encoder.layers.0.norm1", "encoder.layers.0.norm2", "encoder.norm"};
    me_params p;
    me_params_init(&p);
    me_error err = {0};
    for (int k = 0; k < n_norms; k++) {
        char name[ME_NAME_MAX];
        snprintf(name, sizeof name, "%s.weight", names[k]);
        assert_int_equal(me_params_add(&p, name, 1, &d, ME_PARAM_NORM | ME_PARAM_GAMMA, NULL, &err), ME_OK);
        snprintf(name, sizeof name, "%s.bias", names[k]);
        assert_int_equal(me_params_add(&p, name, 1, &d, ME_PARAM_NORM | ME_PARAM_BIAS, NULL, &err), ME_OK);
    }
    assert_int_equal(me_params_alloc(&p, &err), ME_OK);
    me_history h;
    assert_int_equal(me_history_init(&h, &p, &err), ME_OK);
    for (size_t s = 0; s < n_snap; s++) {
        for (int t = 0; t < p.n; t++)
            for (size_t j = 0; j < d; j++) me_params_data(&p, t)[j] = synth_value(t, t % 2 == 0, j, s, n_snap);
        assert_int_equal(me_history_record(&h, &p, synth_step(s, n_snap), &err), ME_OK);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/history.safetensors", dir);
    if (me_history_write(&h, path, &err) != ME_OK) fail_msg("%s", err.msg);
    me_history_free(&h);
    me_params_free(&p);

    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\n");
    for (size_t i = 1; i <= n_metrics; i++) {
        double loss = 0.2 + 2.0 * exp(-(double)i / (0.2 * (double)n_metrics)) + 0.05 * sin((double)i);
        if (i % 10 == 0)
            fprintf(f, "%zu,%.9g,0.001,%.9g,12345.5,%.9g,%.9g\n", i, loss, 1.0 + 0.1 * sin(i * 0.3), loss + 0.1,
                    1.0 - 0.9 * exp(-(double)i / (0.3 * (double)n_metrics)));
        else
            fprintf(f, "%zu,%.9g,0.001,%.9g,12345.5,,\n", i, loss, 1.0 + 0.1 * sin(i * 0.3));
    }
    assert_int_equal(fclose(f), 0);
}

static void make_run(const char *dir, size_t d, size_t n_snap, size_t n_metrics) {
    make_run_norms(dir, d, n_snap, n_metrics, 3);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    assert_non_null(b);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static const char *const PNG_NAMES[] = {
    "layers.0.norm1_trajectories.png", "layers.0.norm1_heatmap.png", "layers.0.norm2_trajectories.png",
    "layers.0.norm2_heatmap.png",      "norm_trajectories.png",      "norm_heatmap.png",
    "training.png"};
#define N_PNG (sizeof PNG_NAMES / sizeof PNG_NAMES[0])

/* Pixels within tol of colour c. */
static long count_color(const unsigned char *img, int w, int h, me_rgb c, int tol) {
    long n = 0;
    for (long i = 0; i < (long)w * h; i++) {
        const unsigned char *p = img + i * 3;
        n += abs(p[0] - c.r) <= tol && abs(p[1] - c.g) <= tol && abs(p[2] - c.b) <= tol;
    }
    return n;
}

/* Plots run dir, then checks that the PNGs of the first n_norms LayerNorms and training.png are
 * listed, decode and are at least 1000x600. */
static void plot_and_check_norms(const char *run, int n_norms) {
    me_error err = {0};
    me_report_files files;
    me_status st = me_report_plots_list(run, &files, &err);
    if (st != ME_OK) fail_msg("%s", err.msg);
    assert_int_equal(files.n, 2 * n_norms + 1);
    for (int k = 0; k < files.n; k++) {
        size_t i = k == 2 * n_norms ? N_PNG - 1 : (size_t)k;
        char path[1024];
        snprintf(path, sizeof path, "%s/plots/%s", run, PNG_NAMES[i]);
        assert_string_equal(files.paths[k], path);
        int w, h, comp;
        unsigned char *img = stbi_load(path, &w, &h, &comp, 3);
        if (!img) fail_msg("%s does not decode", path);
        assert_true(w >= 1000);
        assert_true(h >= 600);
        /* not blank: at least some dark text and some non-grey colour */
        assert_true(count_color(img, w, h, (me_rgb){34, 34, 34}, 40) > 500);
        stbi_image_free(img);
    }
    me_report_files_free(&files);
}

static void plot_and_check(const char *run) { plot_and_check_norms(run, 3); }

/* ---- inspect ---- */

static const me_report_tensor *find_tensor(const me_report *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->t[i].name, name) == 0) return &r->t[i];
    fail_msg("tensor %s not in the report", name);
    return NULL;
}

static void inspect_should_rank_the_planted_jump_first_with_its_jump_step(void **state) {
    fixture *fx = *state;
    char run[600];
    snprintf(run, sizeof run, "%s/inspect16", fx->dir);
    size_t S = 40;
    make_run(run, 16, S, 30);
    me_report r;
    me_error err = {0};
    if (me_report_inspect(&r, run, 3, ME_REPORT_DEFAULT_SIGMA, &err) != ME_OK) fail_msg("%s", err.msg);
    assert_string_equal(r.run, "inspect16");
    assert_int_equal(r.n, 6);
    assert_int_equal(r.n_snap, S);
    assert_int_equal(r.first_step, 0);
    assert_int_equal(r.last_step, synth_step(S - 1, S));
    const me_report_tensor *g = find_tensor(&r, "encoder.layers.0.norm1.weight");
    assert_true(g->is_gamma);
    assert_int_equal(g->n_top, 3);
    assert_int_equal(g->top[0].dim, JUMP_DIM);
    assert_float_equal(g->top[0].start, 1.0, 1e-6);
    assert_float_equal(g->top[0].end, 3.0, 1e-6);
    assert_int_equal(g->top[0].fastest_step, synth_step(S / 2, S));
    assert_int_equal(g->top[0].fastest_from, synth_step(S / 2 - 1, S));
    assert_float_equal(g->top[0].fastest_rate, 2.0 / 10.0, 1e-3);
    assert_int_equal(g->top[1].dim, OFF_DIM); /* the second-largest planted drift */
    me_report_free(&r);
}

static void inspect_should_report_a_gamma_that_drops_to_0_01_as_switched_off(void **state) {
    fixture *fx = *state;
    char run[600];
    snprintf(run, sizeof run, "%s/off16", fx->dir);
    make_run(run, 16, 12, 10);
    me_report r;
    me_error err = {0};
    if (me_report_inspect(&r, run, 5, ME_REPORT_DEFAULT_SIGMA, &err) != ME_OK) fail_msg("%s", err.msg);
    assert_float_equal(r.off_threshold, 0.1, 0);
    for (int i = 0; i < r.n; i++) {
        const me_report_tensor *t = &r.t[i];
        if (strcmp(t->name, "encoder.layers.0.norm1.weight") == 0) {
            assert_int_equal(t->n_off, 1);
            assert_int_equal(t->off[0].dim, OFF_DIM);
            assert_float_equal(t->off[0].end, 0.01, 1e-6);
        } else {
            assert_int_equal(t->n_off, 0); /* all other γ stay near 1, and β are never "switched off" */
        }
    }
    me_report_free(&r);
}

static void inspect_fastest_change_should_divide_by_the_step_gap(void **state) {
    fixture *fx = *state;
    char run[600];
    snprintf(run, sizeof run, "%s/rate16", fx->dir);
    size_t S = 12;
    make_run(run, 16, S, 10);
    me_report r;
    me_error err = {0};
    if (me_report_inspect(&r, run, 1, ME_REPORT_DEFAULT_SIGMA, &err) != ME_OK) fail_msg("%s", err.msg);
    const me_report_tensor *b = find_tensor(&r, "encoder.layers.0.norm1.bias");
    assert_false(b->is_gamma);
    assert_int_equal(b->n_top, 1);
    assert_int_equal(b->top[0].dim, RATE_DIM);
    /* |Δ| 0.5 over 10 steps beats |Δ| 0.8 over 100 steps */
    assert_int_equal(b->top[0].fastest_step, synth_step(3, S));
    assert_float_equal(b->top[0].fastest_rate, 0.05, 1e-6);
    me_report_free(&r);
}

static void inspect_statistics_should_match_a_direct_computation(void **state) {
    fixture *fx = *state;
    char run[600];
    snprintf(run, sizeof run, "%s/stats", fx->dir);
    size_t S = 9, D = 24;
    make_run(run, D, S, 10);
    me_report r;
    me_error err = {0};
    if (me_report_inspect(&r, run, 2, ME_REPORT_DEFAULT_SIGMA, &err) != ME_OK) fail_msg("%s", err.msg);
    for (int t = 0; t < 6; t++) {
        const me_report_tensor *rt = &r.t[t];
        assert_int_equal(rt->dim, D);
        double m0 = 0, m1 = 0, v0 = 0, v1 = 0, l2 = 0;
        for (size_t d = 0; d < D; d++) {
            m0 += synth_value(t, t % 2 == 0, d, 0, S) / (double)D;
            m1 += synth_value(t, t % 2 == 0, d, S - 1, S) / (double)D;
        }
        for (size_t d = 0; d < D; d++) {
            double a = synth_value(t, t % 2 == 0, d, 0, S), b = synth_value(t, t % 2 == 0, d, S - 1, S);
            v0 += (a - m0) * (a - m0) / (double)D;
            v1 += (b - m1) * (b - m1) / (double)D;
            l2 += (b - a) * (b - a);
        }
        assert_float_equal(rt->mean_start, m0, 1e-6);
        assert_float_equal(rt->mean_end, m1, 1e-6);
        assert_float_equal(rt->std_start, sqrt(v0), 1e-6);
        assert_float_equal(rt->std_end, sqrt(v1), 1e-6);
        assert_float_equal(rt->l2_drift, sqrt(l2), 1e-5);
    }
    me_report_free(&r);
}

/* A hand-made history for the outlier rule. 16 dimensions, steps 0, 10, 20, 30. One value away from 15
 * equal ones lies sqrt(15) = 3.873 standard deviations from the mean, whatever its size, so it is an
 * outlier at sigma 3 and not at sigma 4:
 *   layers.0.norm1.weight  dim 5 at 1.5 (step 10), all equal again (step 20: std 0), 3.0 (step 30)
 *   layers.0.norm2.weight  dim 9 at 1.2 at step 10 only; dim 5 at 4.0 at step 30
 *   norm.weight            dim 7 down to 0.2 at step 30 (z = -sqrt(15))
 *   every bias             dim 5 at 9.0 at step 30 (β: never listed) */
static void make_outlier_history(me_history *h, me_params *p) {
    static const char *const names[3] = {"encoder.layers.0.norm1", "encoder.layers.0.norm2", "encoder.norm"};
    size_t d = 16;
    me_params_init(p);
    me_error err = {0};
    for (int k = 0; k < 3; k++) {
        char name[ME_NAME_MAX];
        snprintf(name, sizeof name, "%s.weight", names[k]);
        assert_int_equal(me_params_add(p, name, 1, &d, ME_PARAM_NORM | ME_PARAM_GAMMA, NULL, &err), ME_OK);
        snprintf(name, sizeof name, "%s.bias", names[k]);
        assert_int_equal(me_params_add(p, name, 1, &d, ME_PARAM_NORM | ME_PARAM_BIAS, NULL, &err), ME_OK);
    }
    assert_int_equal(me_params_alloc(p, &err), ME_OK);
    assert_int_equal(me_history_init(h, p, &err), ME_OK);
    for (int s = 0; s < 4; s++) {
        for (int t = 0; t < 6; t++) {
            float *x = me_params_data(p, t);
            for (size_t j = 0; j < d; j++) x[j] = t % 2 == 0 ? (s == 2 ? 1.1f : 1.0f) : 0.0f;
        }
        float *a = me_params_data(p, 0), *b = me_params_data(p, 2), *c = me_params_data(p, 4);
        if (s == 1) a[5] = 1.5f, b[9] = 1.2f;
        if (s == 3) {
            a[5] = 3.0f, b[5] = 4.0f, c[7] = 0.2f;
            for (int t = 1; t < 6; t += 2) me_params_data(p, t)[5] = 9.0f;
        }
        assert_int_equal(me_history_record(h, p, 10 * s, &err), ME_OK);
    }
}

static void outliers_should_follow_the_sigma_rule_on_a_hand_made_history(void **state) {
    (void)state;
    me_history h;
    me_params p;
    make_outlier_history(&h, &p);
    me_report r;
    me_error err = {0};
    assert_int_equal(me_report_analyze(&r, &h, "hand", 3, 3.0, &err), ME_OK);
    assert_true(r.sigma == 3.0);
    /* tensors in history order: norm1.weight, norm1.bias, norm2.weight, norm2.bias, norm.weight, norm.bias */
    static const struct {
        int tensor;
        size_t dim;
        double value, z;
        int64_t first;
    } want[3] = {{0, 5, 3.0, 3.872983346, 10}, {2, 5, 4.0, 3.872983346, 30}, {4, 7, 0.2, -3.872983346, 30}};
    for (int i = 0; i < r.n; i++) {
        size_t n_want = 0;
        for (int k = 0; k < 3; k++) n_want += want[k].tensor == i;
        if (r.t[i].n_outliers != n_want) fail_msg("%s: %zu outliers, expected %zu", r.t[i].name, r.t[i].n_outliers, n_want);
    }
    for (int k = 0; k < 3; k++) {
        const me_report_outlier *o = &r.t[want[k].tensor].outliers[0];
        assert_int_equal(o->dim, want[k].dim);
        assert_true(fabs(o->value - want[k].value) < 1e-6);
        assert_true(fabs(o->z - want[k].z) < 1e-6);
        /* norm1's dim 5 crossed at step 10, went back (step 20) and crossed again: the first crossing counts */
        assert_int_equal(o->first_step, want[k].first);
    }
    /* dim 5 is an outlier in norm1 and norm2 (not in the biases, which are never counted); dim 7 only in one */
    assert_int_equal(r.n_shared, 1);
    assert_int_equal(r.shared[0].dim, 5);
    assert_int_equal(r.shared[0].n, 2);
    assert_int_equal(r.shared[0].tensors[0], 0);
    assert_int_equal(r.shared[0].tensors[1], 2);

    /* the same in JSON */
    cJSON *root = me_report_json(&r);
    assert_non_null(root);
    cJSON *sh = cJSON_GetObjectItem(root, "shared_outliers");
    assert_int_equal(cJSON_GetArraySize(sh), 1);
    cJSON *item = cJSON_GetArrayItem(sh, 0);
    assert_int_equal((int)cJSON_GetObjectItem(item, "dim")->valuedouble, 5);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(item, "layernorms"), 1)->valuestring,
                        "encoder.layers.0.norm2.weight");
    cJSON *t4 = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "tensors"), 4);
    cJSON *o4 = cJSON_GetArrayItem(cJSON_GetObjectItem(t4, "outliers"), 0);
    assert_int_equal((int)cJSON_GetObjectItem(o4, "dim")->valuedouble, 7);
    assert_int_equal((int)cJSON_GetObjectItem(o4, "first_step")->valuedouble, 30);
    assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "tensors"), 1), "outliers"));
    cJSON_Delete(root);
    me_report_free(&r);

    /* at sigma 4 none of them is far enough */
    assert_int_equal(me_report_analyze(&r, &h, "hand", 3, 4.0, &err), ME_OK);
    for (int i = 0; i < r.n; i++) assert_int_equal(r.t[i].n_outliers, 0);
    assert_int_equal(r.n_shared, 0);
    me_report_free(&r);
    assert_int_equal(me_report_analyze(&r, &h, "hand", 3, 0.0, &err), ME_ERR_USAGE);
    me_history_free(&h);
    me_params_free(&p);
}

static void inspect_text_should_name_the_threshold_and_the_planted_dimensions(void **state) {
    fixture *fx = *state;
    char run[600];
    snprintf(run, sizeof run, "%s/text", fx->dir);
    make_run(run, 16, 10, 10);
    me_report r;
    me_error err = {0};
    if (me_report_inspect(&r, run, 5, ME_REPORT_DEFAULT_SIGMA, &err) != ME_OK) fail_msg("%s", err.msg);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(me_report_print(&r, f, &err), ME_OK);
    fclose(f);
    assert_non_null(strstr(buf, "final |gamma| < 0.1"));
    assert_non_null(strstr(buf, "encoder.layers.0.norm1.weight"));
    assert_non_null(strstr(buf, "switched off (|gamma| < 0.1): 1 of 16: dim 5 (0.0100)"));
    free(buf);
    me_report_free(&r);
}

static void run_name_should_be_the_directory_base_name(void **state) {
    (void)state;
    char name[64];
    me_report_run_name("runs/demo", name, sizeof name);
    assert_string_equal(name, "demo");
    me_report_run_name("runs/demo//", name, sizeof name);
    assert_string_equal(name, "demo");
    me_report_run_name("demo", name, sizeof name);
    assert_string_equal(name, "demo");
    me_report_run_name("/", name, sizeof name);
    assert_string_equal(name, "/");
}

/* ---- charts ---- */

static void plots_should_write_decodable_pngs_of_at_least_1000x600(void **state) {
    fixture *fx = *state;
    char run[600];
    snprintf(run, sizeof run, "%s/small", fx->dir);
    make_run(run, 16, 10, 50);
    plot_and_check(run);
    /* The movers are drawn in their palette colours, the jump to 3 saturates the γ heatmap's red end. */
    char path[1024];
    int w, h, comp;
    snprintf(path, sizeof path, "%s/plots/layers.0.norm1_trajectories.png", run);
    unsigned char *img = stbi_load(path, &w, &h, &comp, 3);
    assert_non_null(img);
    assert_true(count_color(img, w, h, me_plot_palette(1), 10) > 200);
    assert_true(count_color(img, w, h, me_plot_palette(3), 10) > 200);
    stbi_image_free(img);
    snprintf(path, sizeof path, "%s/plots/layers.0.norm1_heatmap.png", run);
    img = stbi_load(path, &w, &h, &comp, 3);
    assert_non_null(img);
    assert_true(count_color(img, w, h, me_heatmap_color(3.0, 1.0, 2.0), 6) > 500);
    stbi_image_free(img);
}

static void plots_should_handle_10000_snapshots_at_d_model_16(void **state) {
    fixture *fx = *state;
    char run[600];
    snprintf(run, sizeof run, "%s/long16", fx->dir);
    make_run_norms(run, 16, 10000, 10000, 1);
    plot_and_check_norms(run, 1);
}

static void plots_should_handle_d_model_512_with_10_and_300_snapshots(void **state) {
    fixture *fx = *state;
    char run[600];
    snprintf(run, sizeof run, "%s/wide512", fx->dir);
    make_run_norms(run, 512, 10, 20, 1);
    plot_and_check_norms(run, 1);
    snprintf(run, sizeof run, "%s/wide512long", fx->dir);
    make_run_norms(run, 512, 300, 3000, 1);
    plot_and_check_norms(run, 1);
}

static void plots_should_refuse_a_directory_without_a_history(void **state) {
    fixture *fx = *state;
    char run[600];
    snprintf(run, sizeof run, "%s/empty", fx->dir);
    mkdir(run, 0755);
    me_error err = {0};
    assert_int_equal(me_report_plots(run, &err), ME_ERR_USAGE);
    assert_non_null(strstr(err.msg, "history.safetensors"));
    snprintf(run, sizeof run, "%s/does-not-exist", fx->dir);
    assert_int_equal(me_report_plots(run, &err), ME_ERR_USAGE);
    me_report r;
    assert_int_equal(me_report_inspect(&r, run, 5, ME_REPORT_DEFAULT_SIGMA, &err), ME_ERR_USAGE);
}

static void plots_should_refuse_malformed_metrics_with_file_and_line(void **state) {
    fixture *fx = *state;
    char run[600], path[1024];
    snprintf(run, sizeof run, "%s/badmetrics", fx->dir);
    make_run(run, 16, 10, 5);
    snprintf(path, sizeof path, "%s/metrics.csv", run);
    write_text(path, "step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\n1,2,3,4,5,,\n2,2,3,4,oops,,\n");
    me_error err = {0};
    assert_int_equal(me_report_plots(run, &err), ME_ERR_FORMAT);
    char where[1100];
    snprintf(where, sizeof where, "%s:3: tokens_per_s 'oops'", path);
    assert_non_null(strstr(err.msg, where));
}

static void plots_should_refuse_a_corrupt_history_as_format(void **state) {
    fixture *fx = *state;
    char run[600], path[1024];
    snprintf(run, sizeof run, "%s/badhist", fx->dir);
    make_run(run, 16, 10, 5);
    snprintf(path, sizeof path, "%s/history.safetensors", run);
    write_text(path, "this is not a safetensors file at all");
    me_error err = {0};
    assert_int_equal(me_report_plots(run, &err), ME_ERR_FORMAT);
}

/* Without the font file nothing is drawn: a distinct status (training turns it into a warning), a
 * message naming the font, its package and the command that draws the charts later, and no plots/
 * folder. The run itself is checked first, and with the font the same run draws. */
static void plots_without_the_font_should_skip_with_the_font_status_naming_the_package(void **state) {
    fixture *fx = *state;
    char run[600], path[1024];
    snprintf(run, sizeof run, "%s/nofont", fx->dir);
    make_run(run, 16, 10, 20);
    const char *missing = "/nonexistent/minienc/DejaVuSans.ttf";
    me_report_files files;
    me_error err = {0};
    assert_int_equal(me_report_plots_font(run, missing, &files, &err), ME_ERR_FONT);
    assert_int_equal(err.status, ME_ERR_FONT);
    assert_int_equal(files.n, 0);
    me_report_files_free(&files);
    assert_non_null(strstr(err.msg, missing));
    assert_non_null(strstr(err.msg, ME_FONT_PACKAGE));
    assert_non_null(strstr(err.msg, "minienc plot"));
    assert_null(strchr(err.msg, '\n'));
    snprintf(path, sizeof path, "%s/plots", run);
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);
    /* A file that is not a font is the same case. */
    snprintf(path, sizeof path, "%s/metrics.csv", run);
    assert_int_equal(me_report_plots_font(run, path, NULL, &err), ME_ERR_FONT);
    /* A broken run is still reported as such, font or not. */
    snprintf(path, sizeof path, "%s/missing-run", fx->dir);
    assert_int_equal(me_report_plots_font(path, missing, NULL, &err), ME_ERR_USAGE);
    /* With the font, the same run draws. */
    assert_int_equal(me_report_plots_font(run, me_font_default_path(), &files, &err), ME_OK);
    assert_int_equal(files.n, (int)N_PNG);
    me_report_files_free(&files);
}

/* ---- command line ---- */

/* The library draws the charts once on one thread, the command draws them again on three (the charts
 * are drawn in parallel): same bytes, and it lists them. */
static void cli_plot_should_list_the_files_and_redraw_them_byte_identically(void **state) {
    fixture *fx = *state;
    char run[600], cmd[2048], out[8192], path[1024];
    snprintf(run, sizeof run, "%s/twice", fx->dir);
    make_run(run, 16, 30, 300);
    me_error err = {0};
    me_ops_set_threads(1);
    assert_int_equal(me_report_plots(run, &err), ME_OK);
    unsigned char *first[N_PNG];
    size_t size[N_PNG];
    for (size_t i = 0; i < N_PNG; i++) {
        snprintf(path, sizeof path, "%s/plots/%s", run, PNG_NAMES[i]);
        first[i] = read_bytes(path, &size[i]);
        assert_non_null(first[i]);
        assert_int_equal(remove(path), 0); /* the second run must recreate them, not keep them */
    }
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=3 '%s' plot '%s'", me_test_bin(), run);
    int code = me_run_capture(cmd, out, sizeof out);
    if (code != 0) fail_msg("exit %d: %s", code, out);
    for (size_t i = 0; i < N_PNG; i++) {
        char line[1100];
        snprintf(line, sizeof line, "%s/plots/%s\n", run, PNG_NAMES[i]);
        if (!strstr(out, line)) fail_msg("'%s' missing from:\n%s", line, out);
        snprintf(path, sizeof path, "%s/plots/%s", run, PNG_NAMES[i]);
        size_t n;
        unsigned char *again = read_bytes(path, &n);
        assert_non_null(again);
        assert_int_equal(n, size[i]);
        assert_memory_equal(again, first[i], n);
        free(again);
        free(first[i]);
    }
}

static void cli_inspect_json_should_parse_and_name_the_planted_dimensions(void **state) {
    fixture *fx = *state;
    char run[600], cmd[2048];
    snprintf(run, sizeof run, "%s/clijson", fx->dir);
    make_run(run, 16, 20, 20);
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' --top 2 --json", me_test_bin(), run);
    size_t cap = 1 << 20;
    char *out = malloc(cap);
    assert_non_null(out);
    int code = me_run_capture(cmd, out, cap);
    if (code != 0) fail_msg("exit %d: %s", code, out);
    cJSON *root = cJSON_Parse(out);
    if (!root) fail_msg("not JSON:\n%.2000s", out);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(root, "run")), "clijson");
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(root, "top_k")), 2);
    cJSON *tensors = cJSON_GetObjectItem(root, "tensors");
    assert_int_equal(cJSON_GetArraySize(tensors), 6);
    cJSON *g = cJSON_GetArrayItem(tensors, 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(g, "name")), "encoder.layers.0.norm1.weight");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(g, "kind")), "gamma");
    cJSON *top = cJSON_GetObjectItem(g, "top");
    assert_int_equal(cJSON_GetArraySize(top), 2);
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(top, 0), "dim")), JUMP_DIM);
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(top, 0), "fastest_step")),
                     (int)synth_step(10, 20));
    cJSON *off = cJSON_GetObjectItem(g, "switched_off");
    assert_int_equal(cJSON_GetArraySize(off), 1);
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(off, 0), "dim")), OFF_DIM);
    assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(tensors, 1), "switched_off")); /* β */
    cJSON_Delete(root);

    snprintf(cmd, sizeof cmd, "'%s' inspect '%s'", me_test_bin(), run);
    code = me_run_capture(cmd, out, cap);
    if (code != 0) fail_msg("exit %d: %s", code, out);
    assert_non_null(strstr(out, "encoder.norm.bias"));
    assert_non_null(strstr(out, "switched off"));
    assert_non_null(strstr(out, "top 5 of 16 dimensions:"));
    assert_non_null(strstr(out, "outliers (> 3 std)"));
    /* --top above d_model shows every dimension and says so; --sigma changes the rule's threshold */
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' --top 40 --sigma 2.5", me_test_bin(), run);
    code = me_run_capture(cmd, out, cap);
    if (code != 0) fail_msg("exit %d: %s", code, out);
    assert_non_null(strstr(out, "all 16 dimensions (--top asked for more):"));
    assert_non_null(strstr(out, "outliers (> 2.5 std)"));
    free(out);
}

static void cli_should_fail_with_one_error_line_and_the_right_exit_code(void **state) {
    fixture *fx = *state;
    char run[600], cmd[2048], out[4096];
    snprintf(run, sizeof run, "%s/clierr", fx->dir);
    make_run(run, 16, 10, 5);
    static const struct {
        const char *args;
        int code;
    } cases[] = {
        {"plot", 2},
        {"plot RUN --what", 2},
        {"plot RUN RUN", 2},
        {"inspect RUN --top 0", 2},
        {"inspect RUN --top x", 2},
        {"inspect RUN --sigma 0", 2},
        {"inspect RUN --sigma x", 2},
        {"inspect RUN --sigma", 2},
        {"inspect", 2},
        {"inspect RUN/missing", 2},
        {"plot RUN/missing", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[1600] = "";
        for (const char *a = cases[i].args; *a; a++) {
            if (strncmp(a, "RUN", 3) == 0) {
                strncat(args, run, sizeof args - strlen(args) - 1);
                a += 2;
            } else {
                size_t l = strlen(args);
                args[l] = *a;
                args[l + 1] = '\0';
            }
        }
        snprintf(cmd, sizeof cmd, "'%s' %s", me_test_bin(), args);
        int code = me_run_capture(cmd, out, sizeof out);
        if (code != cases[i].code) fail_msg("'%s': exit %d, expected %d: %s", args, code, cases[i].code, out);
        if (strncmp(out, "minienc: error: ", 16) != 0 || strchr(out, '\n') != out + strlen(out) - 1)
            fail_msg("'%s': expected one 'minienc: error:' line, got:\n%s", args, out);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(inspect_should_rank_the_planted_jump_first_with_its_jump_step),
        cmocka_unit_test(inspect_should_report_a_gamma_that_drops_to_0_01_as_switched_off),
        cmocka_unit_test(inspect_fastest_change_should_divide_by_the_step_gap),
        cmocka_unit_test(inspect_statistics_should_match_a_direct_computation),
        cmocka_unit_test(outliers_should_follow_the_sigma_rule_on_a_hand_made_history),
        cmocka_unit_test(inspect_text_should_name_the_threshold_and_the_planted_dimensions),
        cmocka_unit_test(run_name_should_be_the_directory_base_name),
        cmocka_unit_test(plots_should_write_decodable_pngs_of_at_least_1000x600),
        cmocka_unit_test(plots_should_handle_10000_snapshots_at_d_model_16),
        cmocka_unit_test(plots_should_handle_d_model_512_with_10_and_300_snapshots),
        cmocka_unit_test(plots_should_refuse_a_directory_without_a_history),
        cmocka_unit_test(plots_should_refuse_malformed_metrics_with_file_and_line),
        cmocka_unit_test(plots_should_refuse_a_corrupt_history_as_format),
        cmocka_unit_test(plots_without_the_font_should_skip_with_the_font_status_naming_the_package),
        cmocka_unit_test(cli_plot_should_list_the_files_and_redraw_them_byte_identically),
        cmocka_unit_test(cli_inspect_json_should_parse_and_name_the_planted_dimensions),
        cmocka_unit_test(cli_should_fail_with_one_error_line_and_the_right_exit_code),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
