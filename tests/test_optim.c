/* Tests for the optimizers, schedules and gradient clipping.
 *
 * References: PyTorch fixtures (tests/fixtures/optim/, float64 torch.optim runs, see the README there)
 * for AdamW and SGD; closed-form one-step updates computed in double for the weight-decay mask;
 * hand-evaluated formulas for the schedules; a naive double loop for the gradient norm. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minienc/config.h"
#include "minienc/optim.h"
#include "minienc/params.h"
#include "minienc/safetensors.h"

/* PyTorch's own float32 error on the optimizer fixtures, against float64, is 3e-8 to 9e-8 of the largest
 * value (tests/fixtures/README.md; me_check_close scales by the largest expected value too); the
 * tolerance leaves a tenfold margin over it. */
#define FIXTURE_TOL 1e-6

/* ------------------------------------------------------------------------------------------------ */
/* helpers */

static void load_fixture(me_st_file *f, const char *name) {
    char path[2048];
    snprintf(path, sizeof path, "%s/tests/fixtures/optim/%s.safetensors", me_test_source_dir(), name);
    me_error err = {0};
    me_status st = me_st_read(f, path, &err);
    if (st != ME_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
}

static double meta_double(const me_st_file *f, const char *key) {
    const char *s = me_st_meta(f, key);
    if (!s) {
        print_error("fixture metadata has no key '%s'\n", key);
        fail();
    }
    char *end = NULL;
    double v = strtod(s, &end);
    assert_true(end != s && *end == '\0');
    return v;
}

/* Copies fixture tensor `name` (which must hold exactly n elements) into dst[n]. */
static void fixture_tensor(const me_st_file *f, const char *name, float *dst, size_t n) {
    const me_st_tensor *t = me_st_find(f, name);
    if (!t) {
        print_error("fixture has no tensor '%s'\n", name);
        fail();
    }
    assert_int_equal(t->count, n);
    me_st_to_f32(t, dst);
}

static void add_tensor(me_params *p, const char *name, int ndim, size_t d0, size_t d1, unsigned flags) {
    size_t shape[2] = {d0, d1};
    me_error err = {0};
    assert_int_equal(me_params_add(p, name, ndim, shape, flags, NULL, &err), ME_OK);
}

static void init_optim(me_optim *o, const me_params *p, const me_train_config *t) {
    me_error err = {0};
    me_status st = me_optim_init(o, p, t, &err);
    if (st != ME_OK) {
        print_error("me_optim_init: %s\n", err.msg);
        fail();
    }
}

static me_train_config default_train(void) {
    me_config c;
    me_config_defaults(&c);
    return c.train;
}

/* ------------------------------------------------------------------------------------------------ */
/* PyTorch fixtures */

static const char *const FIXTURE_PARAMS[2] = {"p0", "p1"};

/* Runs the 3 fixture steps on p0 [5,3] and p1 [4] (flags 0: decay applies to both, as in the
 * fixture) and checks parameters and optimizer state after every step. */
static void run_fixture(const char *file) {
    me_st_file f;
    load_fixture(&f, file);
    const char *kind = me_st_meta(&f, "optimizer");
    assert_non_null(kind);
    int adam = strcmp(kind, "adamw") == 0;

    me_train_config t = default_train();
    t.optimizer = adam ? ME_OPT_ADAMW : ME_OPT_SGD;
    t.lr = meta_double(&f, "lr");
    t.weight_decay = meta_double(&f, "weight_decay");
    t.decay_norm_and_bias = 0;
    if (adam) {
        t.beta1 = meta_double(&f, "beta1");
        t.beta2 = meta_double(&f, "beta2");
        t.eps = meta_double(&f, "eps");
    } else {
        t.momentum = meta_double(&f, "momentum");
    }

    me_params p;
    me_params_init(&p);
    add_tensor(&p, "p0", 2, 5, 3, 0);
    add_tensor(&p, "p1", 1, 4, 0, 0);
    assert_int_equal(me_params_alloc(&p, NULL), ME_OK);
    for (int n = 0; n < 2; n++) {
        char name[64];
        snprintf(name, sizeof name, "init.%s", FIXTURE_PARAMS[n]);
        fixture_tensor(&f, name, me_params_data(&p, n), p.t[n].count);
    }

    me_optim o;
    init_optim(&o, &p, &t);
    float want[15], grad_copy[19]; /* want: one tensor; grad_copy: the whole [19] gradient block */
    assert_int_equal(p.total, 19);
    for (int k = 0; k < 3; k++) {
        for (int n = 0; n < 2; n++) {
            char name[64];
            snprintf(name, sizeof name, "grad.%s.%d", FIXTURE_PARAMS[n], k);
            fixture_tensor(&f, name, me_params_grad(&p, n), p.t[n].count);
        }
        memcpy(grad_copy, p.grad, p.total * sizeof(float));
        me_optim_step(&o, &p, t.lr);
        assert_int_equal(o.step, k + 1);
        assert_memory_equal(grad_copy, p.grad, p.total * sizeof(float)); /* the step leaves grads alone */

        for (int n = 0; n < 2; n++) {
            const char *pn = FIXTURE_PARAMS[n];
            size_t cnt = p.t[n].count, off = p.t[n].offset;
            char name[64];
            snprintf(name, sizeof name, "after.%s.%d", pn, k);
            fixture_tensor(&f, name, want, cnt);
            me_check_close(name, me_params_data(&p, n), want, cnt, FIXTURE_TOL);
            snprintf(name, sizeof name, "after_f32.%s.%d", pn, k);
            fixture_tensor(&f, name, want, cnt);
            me_check_close(name, me_params_data(&p, n), want, cnt, FIXTURE_TOL);
            if (adam) {
                snprintf(name, sizeof name, "exp_avg.%s.%d", pn, k);
                fixture_tensor(&f, name, want, cnt);
                me_check_close(name, o.m + off, want, cnt, FIXTURE_TOL);
                snprintf(name, sizeof name, "exp_avg_sq.%s.%d", pn, k);
                fixture_tensor(&f, name, want, cnt);
                me_check_close(name, o.v + off, want, cnt, FIXTURE_TOL);
            } else if (t.momentum != 0.0f) {
                snprintf(name, sizeof name, "momentum_buffer.%s.%d", pn, k);
                fixture_tensor(&f, name, want, cnt);
                me_check_close(name, o.m + off, want, cnt, FIXTURE_TOL);
            }
        }
    }
    me_optim_free(&o);
    me_params_free(&p);
    me_st_free(&f);
}

static void adamw_should_match_pytorch_for_three_steps(void **state) {
    (void)state;
    run_fixture("adamw");
}

static void adamw_at_pytorch_defaults_should_match_pytorch_for_three_steps(void **state) {
    (void)state;
    run_fixture("adamw_defaults");
}

static void sgd_with_momentum_should_match_pytorch_for_three_steps(void **state) {
    (void)state;
    run_fixture("sgd_momentum");
}

static void sgd_without_momentum_should_match_pytorch_for_three_steps(void **state) {
    (void)state;
    run_fixture("sgd_plain");
}

/* ------------------------------------------------------------------------------------------------ */
/* weight-decay mask */

/* Registry: "w" [3,2] flags 0, "norm.weight" [2] NORM|GAMMA, "lin.bias" [3] BIAS; data and grads
 * are distinct nonzero values. */
static void make_mask_registry(me_params *p) {
    me_params_init(p);
    add_tensor(p, "w", 2, 3, 2, 0);
    add_tensor(p, "norm.weight", 1, 2, 0, ME_PARAM_NORM | ME_PARAM_GAMMA);
    add_tensor(p, "lin.bias", 1, 3, 0, ME_PARAM_BIAS);
    assert_int_equal(me_params_alloc(p, NULL), ME_OK);
    for (size_t i = 0; i < p->total; i++) {
        p->data[i] = 0.5f + 0.25f * (float)i;
        p->grad[i] = (i % 2 ? -1.0f : 1.0f) * (0.1f + 0.3f * (float)i);
    }
}

/* One update from the first step, in double: AdamW's m_hat = g and sqrt(v_hat) = |g| at t = 1. */
static double adamw_first_step(double p, double g, double lr, double wd, double eps, int decay) {
    if (decay) p *= 1.0 - lr * wd;
    return p - lr * g / (fabs(g) + eps);
}

static double sgd_first_step(double p, double g, double lr, double wd, int decay) {
    return p - lr * (g + (decay ? wd * p : 0.0));
}

static void check_mask_case(me_optimizer kind, int decay_norm_and_bias) {
    me_params p;
    make_mask_registry(&p);
    me_train_config t = default_train();
    t.optimizer = kind;
    t.weight_decay = 0.5f;
    t.beta1 = 0.9f;
    t.beta2 = 0.999f;
    t.eps = 1e-8f;
    t.momentum = 0.9f;
    t.decay_norm_and_bias = decay_norm_and_bias;
    const float lr = 0.1f;

    me_optim o;
    init_optim(&o, &p, &t);
    assert_int_equal(o.decay[0], 1);
    assert_int_equal(o.decay[1], decay_norm_and_bias ? 1 : 0);
    assert_int_equal(o.decay[2], decay_norm_and_bias ? 1 : 0);

    float want[12], before[12];
    memcpy(before, p.data, p.total * sizeof(float));
    for (int k = 0; k < p.n; k++) {
        int decay = k == 0 || decay_norm_and_bias;
        for (size_t i = p.t[k].offset; i < p.t[k].offset + p.t[k].count; i++) {
            double w = before[i], g = p.grad[i];
            want[i] = (float)(kind == ME_OPT_ADAMW ? adamw_first_step(w, g, lr, t.weight_decay, t.eps, decay)
                                                   : sgd_first_step(w, g, lr, t.weight_decay, decay));
        }
    }
    me_optim_step(&o, &p, lr);
    for (int k = 0; k < p.n; k++)
        me_check_close(p.t[k].name, me_params_data(&p, k), want + p.t[k].offset, p.t[k].count, 1e-6);
    me_optim_free(&o);
    me_params_free(&p);
}

static void adamw_should_skip_decay_on_norm_and_bias_by_default(void **state) {
    (void)state;
    check_mask_case(ME_OPT_ADAMW, 0);
}

static void adamw_should_decay_norm_and_bias_when_asked(void **state) {
    (void)state;
    check_mask_case(ME_OPT_ADAMW, 1);
}

static void sgd_should_skip_decay_on_norm_and_bias_by_default(void **state) {
    (void)state;
    check_mask_case(ME_OPT_SGD, 0);
}

static void sgd_should_decay_norm_and_bias_when_asked(void **state) {
    (void)state;
    check_mask_case(ME_OPT_SGD, 1);
}

/* ------------------------------------------------------------------------------------------------ */
/* state round trip and init checks */

/* Copying m, v and step into a fresh optimizer (what a checkpoint restore does) continues exactly
 * like the uninterrupted run. */
static void restored_state_should_continue_exactly_like_an_uninterrupted_run(void **state) {
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        me_params a, b;
        make_mask_registry(&a);
        make_mask_registry(&b);
        me_train_config t = default_train();
        t.optimizer = kind == 0 ? ME_OPT_ADAMW : ME_OPT_SGD;
        t.momentum = 0.8f;
        me_optim oa, ob;
        init_optim(&oa, &a, &t);
        init_optim(&ob, &b, &t);
        me_optim_step(&oa, &a, 0.01f);
        me_optim_step(&ob, &b, 0.01f);

        me_optim oc;
        init_optim(&oc, &b, &t);
        memcpy(oc.m, ob.m, b.total * sizeof(float));
        if (ob.v) memcpy(oc.v, ob.v, b.total * sizeof(float));
        oc.step = ob.step;
        me_optim_free(&ob);
        for (int k = 0; k < 2; k++) {
            for (size_t i = 0; i < a.total; i++) a.grad[i] = b.grad[i] = 0.3f * (float)(k + 1) - 0.1f * (float)i;
            me_optim_step(&oa, &a, 0.02f);
            me_optim_step(&oc, &b, 0.02f);
        }
        assert_int_equal(oa.step, 3);
        assert_int_equal(oc.step, 3);
        assert_memory_equal(a.data, b.data, a.total * sizeof(float));
        assert_memory_equal(oa.m, oc.m, a.total * sizeof(float));
        me_optim_free(&oa);
        me_optim_free(&oc);
        me_params_free(&a);
        me_params_free(&b);
    }
}

static void init_should_refuse_an_unallocated_registry_and_bad_hyperparameters(void **state) {
    (void)state;
    me_params p;
    me_params_init(&p);
    add_tensor(&p, "w", 1, 4, 0, 0);
    me_train_config t = default_train();
    me_optim o;
    me_error err = {0};
    assert_int_equal(me_optim_init(&o, &p, &t, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "not allocated"));
    me_optim_free(&o);

    assert_int_equal(me_params_alloc(&p, NULL), ME_OK);
    t.beta2 = 1.0f;
    assert_int_equal(me_optim_init(&o, &p, &t, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "train.beta2"));
    me_optim_free(&o);

    t = default_train();
    t.optimizer = ME_OPT_SGD;
    t.momentum = -0.5f;
    assert_int_equal(me_optim_init(&o, &p, &t, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "train.momentum"));
    me_optim_free(&o);

    t.momentum = 0.0f;
    assert_int_equal(me_optim_init(&o, &p, &t, &err), ME_OK);
    assert_null(o.v); /* SGD keeps one buffer */
    assert_non_null(o.m);
    me_optim_free(&o);
    me_params_free(&p);
}

/* ------------------------------------------------------------------------------------------------ */
/* schedules */

static void assert_lr(const me_train_config *t, int d_model, long step, double want) {
    double got = me_schedule_lr(t, d_model, step);
    double tol = 1e-6 * fabs(want) + 1e-30;
    if (!(fabs(got - want) <= tol)) {
        print_error("schedule %d, step %ld: got %.9g want %.9g\n", (int)t->schedule, step, got, want);
        fail();
    }
}

static void constant_schedule_should_hold_lr_with_optional_linear_warmup(void **state) {
    (void)state;
    me_train_config t = default_train();
    t.schedule = ME_SCHED_CONSTANT;
    t.lr = 3e-3f;
    t.steps = 100;
    t.warmup = 0;
    assert_lr(&t, 64, 0, 3e-3);
    assert_lr(&t, 64, 57, 3e-3);
    assert_lr(&t, 64, 1000, 3e-3);
    t.warmup = 4;
    assert_lr(&t, 64, 0, 3e-3 * 1.0 / 4.0);
    assert_lr(&t, 64, 1, 3e-3 * 2.0 / 4.0);
    assert_lr(&t, 64, 3, 3e-3);
    assert_lr(&t, 64, 4, 3e-3);
    assert_lr(&t, 64, 99, 3e-3);
}

static void cosine_schedule_should_warm_up_then_decay_to_zero(void **state) {
    (void)state;
    const double pi = 3.14159265358979323846;
    me_train_config t = default_train();
    t.schedule = ME_SCHED_COSINE;
    t.lr = 1e-3f;
    t.steps = 110;
    t.warmup = 10;
    assert_lr(&t, 64, 0, 1e-4);
    assert_lr(&t, 64, 4, 5e-4);
    assert_lr(&t, 64, 9, 1e-3);
    assert_lr(&t, 64, 10, 1e-3);                                   /* start of the decay */
    assert_lr(&t, 64, 35, 1e-3 * 0.5 * (1.0 + cos(pi * 0.25)));
    assert_lr(&t, 64, 60, 0.5e-3);                                 /* middle */
    assert_lr(&t, 64, 109, 1e-3 * 0.5 * (1.0 + cos(pi * 0.99))); /* last update */
    assert_true(fabs(me_schedule_lr(&t, 64, 110)) < 1e-12);        /* end */
    assert_true(fabs(me_schedule_lr(&t, 64, 500)) < 1e-12);
    t.warmup = 0;
    assert_lr(&t, 64, 0, 1e-3);
    assert_lr(&t, 64, 55, 0.5e-3);
}

static void noam_schedule_should_peak_at_the_last_warmup_step(void **state) {
    (void)state;
    me_train_config t = default_train();
    t.schedule = ME_SCHED_NOAM;
    t.lr = 2.0f;
    t.steps = 100000;
    t.warmup = 4000;
    const int d = 512;
    double scale = 2.0 / sqrt(512.0);
    assert_lr(&t, d, 0, scale * 1.0 * pow(4000.0, -1.5));
    assert_lr(&t, d, 1999, scale * 2000.0 * pow(4000.0, -1.5));
    assert_lr(&t, d, 3999, scale / sqrt(4000.0)); /* peak: both terms equal */
    assert_lr(&t, d, 15999, scale / sqrt(16000.0));
    assert_true(me_schedule_lr(&t, d, 3998) < me_schedule_lr(&t, d, 3999));
    assert_true(me_schedule_lr(&t, d, 4000) < me_schedule_lr(&t, d, 3999));
    t.warmup = 0; /* taken as 1: pure inverse square root */
    assert_lr(&t, d, 0, scale);
    assert_lr(&t, d, 99, scale / 10.0);
}

/* ------------------------------------------------------------------------------------------------ */
/* gradient norm and clipping */

static double naive_norm(const float *g, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * (double)g[i];
    return sqrt(s);
}

static void make_random_grads(me_params *p) {
    me_params_init(p);
    add_tensor(p, "a", 2, 7, 5, 0);
    add_tensor(p, "b", 1, 11, 0, ME_PARAM_BIAS);
    assert_int_equal(me_params_alloc(p, NULL), ME_OK);
    me_rng r;
    me_rng_seed(&r, 42);
    me_fill_uniform(p->grad, p->total, -2.0f, 2.0f, &r);
}

/* The thread shards' gradients summed into the main block: exactly the sum in shard order, one float
 * addition at a time, for 1-4 shards, in a block small enough for one thread and one large enough for all
 * (70,001 floats: not a multiple of any vector or thread count). */
static void sum_grads_should_add_the_shards_in_order_exactly(void **state) {
    (void)state;
    const size_t sizes[2] = {37, 70001};
    me_rng r;
    me_rng_seed(&r, 7);
    for (int z = 0; z < 2; z++) {
        me_params main, sh[4];
        const me_params *ptrs[4];
        me_params_init(&main);
        add_tensor(&main, "w", 1, sizes[z], 0, 0);
        assert_int_equal(me_params_alloc(&main, NULL), ME_OK);
        for (int t = 0; t < 4; t++) {
            me_params_init(&sh[t]);
            add_tensor(&sh[t], "w", 1, sizes[z], 0, 0);
            assert_int_equal(me_params_alloc(&sh[t], NULL), ME_OK);
            /* magnitudes 1e-3 to 1e3: an addition in another order rounds differently */
            for (size_t i = 0; i < sizes[z]; i++)
                sh[t].grad[i] = (me_rng_uniform(&r) - 0.5f) * powf(10.0f, (float)(i % 7) - 3.0f);
            ptrs[t] = &sh[t];
        }
        for (int n = 1; n <= 4; n++) {
            me_params_sum_grads(&main, ptrs, n);
            for (size_t i = 0; i < sizes[z]; i++) {
                float want = sh[0].grad[i];
                for (int t = 1; t < n; t++) want += sh[t].grad[i];
                if (memcmp(&main.grad[i], &want, sizeof want) != 0)
                    fail_msg("%d shards, element %zu of %zu: %.9g, expected %.9g", n, i, sizes[z], main.grad[i], want);
            }
        }
        for (int t = 0; t < 4; t++) me_params_free(&sh[t]);
        me_params_free(&main);
    }
}

static void grad_norm_should_equal_the_naive_l2_norm(void **state) {
    (void)state;
    me_params p;
    me_params_init(&p);
    add_tensor(&p, "a", 1, 1, 0, 0);
    add_tensor(&p, "b", 1, 1, 0, 0);
    assert_int_equal(me_params_alloc(&p, NULL), ME_OK);
    p.grad[0] = 3.0f;
    p.grad[1] = -4.0f;
    assert_true(me_grad_norm(&p) == 5.0);
    me_params_free(&p);

    make_random_grads(&p);
    double want = naive_norm(p.grad, p.total);
    assert_true(fabs(me_grad_norm(&p) - want) <= 1e-12 * want);
    me_params_free(&p);
}

static void clip_grad_norm_should_scale_to_max_norm_when_above(void **state) {
    (void)state;
    me_params p;
    make_random_grads(&p);
    float orig[46];
    assert_int_equal(p.total, 46);
    memcpy(orig, p.grad, sizeof orig);
    double before = naive_norm(orig, p.total);
    float max_norm = (float)(before / 3.0);

    double got = me_clip_grad_norm(&p, max_norm);
    assert_true(fabs(got - before) <= 1e-12 * before);
    double after = naive_norm(p.grad, p.total);
    if (!(fabs(after - max_norm) <= 1e-6 * max_norm)) {
        print_error("norm after clipping %.9g, max_norm %.9g\n", after, (double)max_norm);
        fail();
    }
    /* every element scaled by the same factor max_norm / (total + 1e-6) */
    float want[46];
    double c = (double)max_norm / (before + 1e-6);
    for (size_t i = 0; i < p.total; i++) want[i] = (float)(orig[i] * c);
    assert_tensor_close(p.grad, want, p.total, 1e-6);
    me_params_free(&p);
}

static void clip_grad_norm_should_leave_grads_alone_when_below_or_off(void **state) {
    (void)state;
    me_params p;
    make_random_grads(&p);
    float orig[46];
    memcpy(orig, p.grad, sizeof orig);
    double before = naive_norm(orig, p.total);

    double got = me_clip_grad_norm(&p, (float)(before * 2.0));
    assert_true(fabs(got - before) <= 1e-12 * before);
    assert_memory_equal(p.grad, orig, sizeof orig);

    got = me_clip_grad_norm(&p, 0.0f); /* off */
    assert_true(fabs(got - before) <= 1e-12 * before);
    assert_memory_equal(p.grad, orig, sizeof orig);

    p.grad[3] = NAN; /* non-finite norm: reported, grads untouched */
    got = me_clip_grad_norm(&p, 1e-3f);
    assert_true(isnan(got));
    assert_memory_equal(p.grad + 4, orig + 4, sizeof orig - 4 * sizeof(float));
    me_params_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(adamw_should_match_pytorch_for_three_steps),
        cmocka_unit_test(adamw_at_pytorch_defaults_should_match_pytorch_for_three_steps),
        cmocka_unit_test(sgd_with_momentum_should_match_pytorch_for_three_steps),
        cmocka_unit_test(sgd_without_momentum_should_match_pytorch_for_three_steps),
        cmocka_unit_test(adamw_should_skip_decay_on_norm_and_bias_by_default),
        cmocka_unit_test(adamw_should_decay_norm_and_bias_when_asked),
        cmocka_unit_test(sgd_should_skip_decay_on_norm_and_bias_by_default),
        cmocka_unit_test(sgd_should_decay_norm_and_bias_when_asked),
        cmocka_unit_test(restored_state_should_continue_exactly_like_an_uninterrupted_run),
        cmocka_unit_test(init_should_refuse_an_unallocated_registry_and_bad_hyperparameters),
        cmocka_unit_test(constant_schedule_should_hold_lr_with_optional_linear_warmup),
        cmocka_unit_test(cosine_schedule_should_warm_up_then_decay_to_zero),
        cmocka_unit_test(noam_schedule_should_peak_at_the_last_warmup_step),
        cmocka_unit_test(sum_grads_should_add_the_shards_in_order_exactly),
        cmocka_unit_test(grad_norm_should_equal_the_naive_l2_norm),
        cmocka_unit_test(clip_grad_norm_should_scale_to_max_norm_when_above),
        cmocka_unit_test(clip_grad_norm_should_leave_grads_alone_when_below_or_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
