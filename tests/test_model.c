/* The full model (embedding, positions, encoder, head, cross-entropy) against independent references:
 *   - central finite differences of me_model_forward's loss along a random direction per tensor
 *     (the style of test_gradcheck.c), for tag (with ignored targets) and classify (mean pooling over
 *     the non-padded positions), learned and sinusoidal positions, with and without dropout (the
 *     masks are counter-based on a fixed key and step, so every forward draws the same ones);
 *   - the loss, probabilities and correct count recomputed in double from the encoder output and the
 *     head weights, and the encoder input recomputed from the tables;
 *   - the sinusoidal table against its formula;
 *   - me_model_build refusing a model that cannot fit in memory before allocating anything, and the
 *     one memory refusal (me_refuse_beyond_memory) against the machine's size from sysconf. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "minienc/config.h"
#include "minienc/model.h"

#include "internal.h"

/* Central differences in float32 at step 1e-3: the worst relative error of the 300 direction checks
 * below was 5.1e-4 (measured), so 3e-3 leaves a sixfold margin; 0.01 added to one element of
 * pos_embed.weight's gradient (of 128) fails it (relative error 0.028). */
#define FD_EPS 1e-3
#define FD_RTOL 3e-3

/* A config from defaults plus "section.key=value" overrides, validated. */
static void make_config(me_config *c, const char *const *sets, size_t n) {
    me_config_defaults(c);
    me_error err = {0};
    for (size_t i = 0; i < n; i++) {
        if (me_config_set(c, sets[i], &err) != ME_OK) {
            print_error("me_config_set(%s): %s\n", sets[i], err.msg);
            fail();
        }
    }
    if (me_config_validate(c, &err) != ME_OK) {
        print_error("me_config_validate: %s\n", err.msg);
        fail();
    }
}

typedef struct {
    me_model m;
    int b, s;
    int32_t *tokens, *targets;
    uint8_t *pad;
    int training;
    uint64_t drop_seed;
} model_case;

static double case_loss(model_case *c) {
    /* counter-based masks: the same key gives the same masks at every evaluation */
    me_dropout_key key = {.key = {c->drop_seed, 1, 2, 3}, .step = 5, .example0 = 0};
    return me_model_forward(&c->m, c->tokens, c->pad, c->targets, c->b, c->s, c->training, &key, NULL);
}

/* Builds the model, moves every parameter off its initial value (LayerNorm gamma 1 / beta 0 would hide
 * mistakes that scale by them) and makes a batch: sequence bi has length s - bi % 3 (>= 1), tokens
 * uniform over [0, vocab - 1) so that the last embedding row is never used. For tag, targets are -1 on
 * padding and on every fifth real position. */
static void case_init(model_case *c, const me_config *cfg, int b, int s, uint64_t seed) {
    memset(c, 0, sizeof *c);
    me_error err = {0};
    assert_int_equal(me_model_build(&c->m, cfg, &err), ME_OK);
    me_rng rng;
    me_rng_seed(&rng, seed);
    me_model_init_weights(&c->m, &rng);
    me_params *p = &c->m.params;
    for (int i = 0; i < p->n; i++) {
        float *w = me_params_data(p, i);
        float amp = (p->t[i].flags & ME_PARAM_NORM) ? 0.5f : 0.2f;
        for (size_t k = 0; k < p->t[i].count; k++) w[k] += amp * (me_rng_uniform(&rng) - 0.5f);
    }
    assert_int_equal(me_model_alloc(&c->m, b, s, &err), ME_OK);
    c->b = b;
    c->s = s;
    c->training = cfg->model.dropout > 0;
    c->drop_seed = seed * 31 + 7;
    size_t t = (size_t)b * s;
    c->tokens = calloc(t, sizeof *c->tokens);
    c->pad = calloc(t, 1);
    c->targets = calloc(t, sizeof *c->targets);
    int vocab = cfg->model.vocab_size, classes = c->m.cfg.n_classes;
    for (int bi = 0; bi < b; bi++) {
        int len = s - bi % 3;
        if (len < 1) len = 1;
        for (int si = 0; si < s; si++) {
            size_t i = (size_t)bi * s + si;
            if (si < len) {
                c->tokens[i] = (int32_t)me_rng_below(&rng, (uint64_t)(vocab - 1));
            } else {
                c->pad[i] = 1;
                c->tokens[i] = 0;
            }
            if (cfg->data.task == ME_TASK_TAG)
                c->targets[i] = (si >= len || i % 5 == 4) ? -1 : (int32_t)me_rng_below(&rng, (uint64_t)classes);
        }
        if (cfg->data.task == ME_TASK_CLASSIFY) c->targets[bi] = (int32_t)me_rng_below(&rng, (uint64_t)classes);
    }
}

static void case_free(model_case *c) {
    me_model_free(&c->m);
    free(c->tokens), free(c->pad), free(c->targets);
}

static double case_loss_fn(void *c) { return case_loss(c); }

static double check_direction(model_case *c, const char *what, float *w, const float *g, size_t n, me_rng *rng) {
    return me_fd_check_direction(case_loss_fn, c, what, w, g, n, FD_EPS, FD_RTOL, rng);
}

static void run_gradcheck(const char *const *sets, size_t n_sets, int b, int s, uint64_t seed) {
    me_config cfg;
    make_config(&cfg, sets, n_sets);
    model_case c;
    case_init(&c, &cfg, b, s, seed);
    me_params *p = &c.m.params;
    double l0 = case_loss(&c);
    assert_true(isfinite(l0));
    me_params_zero_grad(p);
    me_model_backward(&c.m);
    /* the forward again must give the same loss: backward must not disturb what forward reads */
    assert_true(case_loss(&c) == l0);
    me_rng rng;
    me_rng_seed(&rng, seed + 1000);
    /* three random directions per tensor: one direction weighs a single wrong element by about 1/n */
    for (int dir = 0; dir < 3; dir++)
        for (int i = 0; i < p->n; i++)
            check_direction(&c, p->t[i].name, me_params_data(p, i), me_params_grad(p, i), p->t[i].count, &rng);
    /* element by element: a used embedding row, the first position row (learned positions) and the
     * head's bias, which only the model (not the encoder's PyTorch fixtures) computes; |fd - analytic|
     * within 1e-2 (|analytic| + 1e-2): the worst of the 115 elements checked measured 3.3e-3 of that */
    int e = me_params_find(p, "embed.weight"), hb = me_params_find(p, "head.bias");
    int pe0 = me_params_find(p, "pos_embed.weight");
    assert_true(e >= 0 && hb >= 0);
    const char *names[3] = {"embed row", "head.bias", "pos_embed row 0"};
    float *targets_w[3] = {me_params_data(p, e) + (size_t)c.tokens[0] * cfg.model.d_model, me_params_data(p, hb),
                           pe0 >= 0 ? me_params_data(p, pe0) : NULL};
    const float *targets_g[3] = {me_params_grad(p, e) + (size_t)c.tokens[0] * cfg.model.d_model,
                                 me_params_grad(p, hb), pe0 >= 0 ? me_params_grad(p, pe0) : NULL};
    size_t counts[3] = {(size_t)cfg.model.d_model, p->t[hb].count, (size_t)cfg.model.d_model};
    for (int which = 0; which < 3; which++)
        for (size_t k = 0; targets_w[which] && k < counts[which]; k++) {
            float *w = targets_w[which] + k, saved = *w;
            *w = (float)(saved + FD_EPS);
            double lp = case_loss(&c);
            *w = (float)(saved - FD_EPS);
            double lm = case_loss(&c);
            *w = saved;
            double num = (lp - lm) / (2 * FD_EPS), an = targets_g[which][k];
            if (!(fabs(num - an) <= 1e-2 * (fabs(an) + 1e-2))) {
                print_error("%s[%zu]: finite difference %.8g vs analytic %.8g\n", names[which], k, num, an);
                fail();
            }
        }
    /* the never-used last embedding row and the position rows past s get exactly zero gradient */
    const float *ge = me_params_grad(p, e) + (size_t)(cfg.model.vocab_size - 1) * cfg.model.d_model;
    for (int j = 0; j < cfg.model.d_model; j++) assert_true(ge[j] == 0.0f);
    int pe = me_params_find(p, "pos_embed.weight");
    if (cfg.model.positional == ME_POS_LEARNED) {
        assert_true(pe >= 0);
        const float *gp = me_params_grad(p, pe);
        for (size_t j = (size_t)s * cfg.model.d_model; j < p->t[pe].count; j++) assert_true(gp[j] == 0.0f);
    } else {
        assert_int_equal(pe, -1);
    }
    case_free(&c);
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define TINY "model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.vocab_size=7", "model.max_len=8", \
             "model.activation=gelu"

static void tag_model_with_learned_positions_and_ignored_targets_should_match_finite_differences(void **state) {
    (void)state;
    const char *sets[] = {TINY, "model.n_layers=2", "model.dropout=0", "data.task=tag"};
    run_gradcheck(sets, N_OF(sets), 3, 6, 101);
}

static void tag_model_with_sinusoidal_positions_pre_ln_and_dropout_should_match_finite_differences(void **state) {
    (void)state;
    const char *sets[] = {TINY,
                          "model.n_layers=2",
                          "model.dropout=0.2",
                          "model.positional=sinusoidal",
                          "model.norm_first=true",
                          "model.final_norm=true",
                          "model.n_classes=5",
                          "data.task=tag"};
    run_gradcheck(sets, N_OF(sets), 3, 5, 102);
}

static void classify_model_with_mean_pooling_over_padding_should_match_finite_differences(void **state) {
    (void)state;
    const char *sets[] = {TINY, "model.n_layers=1", "model.dropout=0", "model.n_classes=3", "data.task=classify"};
    run_gradcheck(sets, N_OF(sets), 4, 6, 103);
}

static void classify_model_with_sinusoidal_positions_and_dropout_should_match_finite_differences(void **state) {
    (void)state;
    const char *sets[] = {TINY,
                          "model.n_layers=2",
                          "model.dropout=0.1",
                          "model.positional=sinusoidal",
                          "model.n_classes=4",
                          "data.task=classify"};
    run_gradcheck(sets, N_OF(sets), 4, 5, 104);
}

/* The sinusoidal value by its formula, in double: PE(p, 2i) = sin(p / 10000^(2i/D)),
 * PE(p, 2i+1) = cos(p / 10000^(2i/D)). */
static double sinusoid(int pos, int j, int d) {
    int i2 = j - j % 2;
    double angle = (double)pos / pow(10000.0, (double)i2 / (double)d);
    return j % 2 == 0 ? sin(angle) : cos(angle);
}

/* Recomputes the encoder input, logits, softmax, loss and correct count of the last forward in double
 * from the tables, the encoder output and the head weights. */
static void check_forward_against_naive(model_case *c, double loss, size_t correct) {
    const me_model *m = &c->m;
    const me_params *p = &m->params;
    int d = m->cfg.d_model, cl = m->cfg.n_classes, b = c->b, s = c->s;
    const float *emb = me_params_data(p, me_params_find(p, "embed.weight"));
    int pe = me_params_find(p, "pos_embed.weight");
    for (int i = 0; i < b * s; i++)
        for (int j = 0; j < d; j++) {
            double pos = pe >= 0 ? (double)me_params_data(p, pe)[(i % s) * d + j] : sinusoid(i % s, j, d);
            double want = (double)emb[(size_t)c->tokens[i] * d + j] + pos;
            if (!(fabs((double)m->x[(size_t)i * d + j] - want) <= 1e-6 * (1 + fabs(want)))) {
                print_error("encoder input [%d,%d] = %.9g, want embed + position = %.9g\n", i, j,
                            (double)m->x[(size_t)i * d + j], want);
                fail();
            }
        }
    const float *out = m->enc.out, *w = me_params_data(p, me_params_find(p, "head.weight"));
    const float *bias = me_params_data(p, me_params_find(p, "head.bias"));
    int tag = m->task == ME_TASK_TAG;
    int rows = tag ? b * s : b;
    double *feat = malloc((size_t)d * sizeof *feat), *z = malloc((size_t)cl * sizeof *z);
    double sum_loss = 0;
    size_t counted = 0, right = 0;
    for (int r = 0; r < rows; r++) {
        if (tag) {
            for (int j = 0; j < d; j++) feat[j] = out[(size_t)r * d + j];
        } else {
            int n = 0;
            for (int j = 0; j < d; j++) feat[j] = 0;
            for (int si = 0; si < s; si++) {
                if (c->pad[r * s + si]) continue;
                n++;
                for (int j = 0; j < d; j++) feat[j] += out[((size_t)r * s + si) * d + j];
            }
            for (int j = 0; j < d; j++) feat[j] /= n;
        }
        double mx = -INFINITY;
        int arg = 0;
        for (int k = 0; k < cl; k++) {
            z[k] = bias[k];
            for (int j = 0; j < d; j++) z[k] += (double)w[(size_t)k * d + j] * feat[j];
            if (z[k] > mx) mx = z[k], arg = k;
        }
        double se = 0;
        for (int k = 0; k < cl; k++) se += exp(z[k] - mx);
        for (int k = 0; k < cl; k++) {
            double prob = exp(z[k] - mx) / se, got = m->probs[(size_t)r * cl + k];
            if (!(fabs((double)m->logits[(size_t)r * cl + k] - z[k]) <= 1e-5 * (1 + fabs(z[k])))) {
                print_error("logit [%d,%d] = %.9g, want %.9g\n", r, k, (double)m->logits[(size_t)r * cl + k], z[k]);
                fail();
            }
            if (!(fabs(got - prob) <= 1e-5)) {
                print_error("probability [%d,%d] = %.9g, want %.9g\n", r, k, got, prob);
                fail();
            }
        }
        int32_t tg = c->targets[r];
        if (tg < 0) continue;
        sum_loss += log(se) + mx - z[tg];
        counted++;
        right += arg == tg;
    }
    double want = sum_loss / (double)counted;
    if (!(fabs(loss - want) <= 1e-5 * fabs(want) + 1e-7)) {
        print_error("loss %.12g, naive cross-entropy %.12g over %zu targets\n", loss, want, counted);
        fail();
    }
    assert_int_equal(m->n_targets, counted);
    assert_int_equal(correct, right);
    free(feat), free(z);
}

static void tag_loss_should_equal_naive_cross_entropy_over_counted_targets(void **state) {
    (void)state;
    const char *sets[] = {TINY, "model.n_layers=2", "model.dropout=0", "data.task=tag"};
    me_config cfg;
    make_config(&cfg, sets, N_OF(sets));
    model_case c;
    case_init(&c, &cfg, 4, 7, 201);
    size_t correct = 99;
    double loss = me_model_forward(&c.m, c.tokens, c.pad, c.targets, c.b, c.s, 0, NULL, &correct);
    check_forward_against_naive(&c, loss, correct);
    case_free(&c);
}

static void classify_loss_should_equal_naive_cross_entropy_of_mean_pooled_outputs(void **state) {
    (void)state;
    const char *sets[] = {TINY, "model.n_layers=1", "model.dropout=0", "model.n_classes=3",
                          "model.positional=sinusoidal", "data.task=classify"};
    me_config cfg;
    make_config(&cfg, sets, N_OF(sets));
    model_case c;
    case_init(&c, &cfg, 5, 6, 202);
    size_t correct = 99;
    double loss = me_model_forward(&c.m, c.tokens, c.pad, c.targets, c.b, c.s, 0, NULL, &correct);
    check_forward_against_naive(&c, loss, correct);
    /* tokens under padding must not matter */
    double before = loss;
    for (int i = 0; i < c.b * c.s; i++)
        if (c.pad[i]) c.tokens[i] = 5;
    assert_true(me_model_forward(&c.m, c.tokens, c.pad, c.targets, c.b, c.s, 0, NULL, NULL) == before);
    case_free(&c);
}

static void loss_should_be_nan_and_backward_a_no_op_when_every_target_is_ignored(void **state) {
    (void)state;
    const char *sets[] = {TINY, "model.n_layers=1", "model.dropout=0", "data.task=tag"};
    me_config cfg;
    make_config(&cfg, sets, N_OF(sets));
    model_case c;
    case_init(&c, &cfg, 2, 4, 203);
    for (int i = 0; i < c.b * c.s; i++) c.targets[i] = -1;
    size_t correct = 99;
    assert_true(isnan(me_model_forward(&c.m, c.tokens, c.pad, c.targets, c.b, c.s, 0, NULL, &correct)));
    assert_int_equal(correct, 0);
    me_params_zero_grad(&c.m.params);
    me_model_backward(&c.m);
    for (size_t i = 0; i < c.m.params.total; i++) assert_true(c.m.params.grad[i] == 0.0f);
    case_free(&c);
}

static void sinusoidal_table_should_match_its_formula(void **state) {
    (void)state;
    const char *d16[] = {"model.d_model=16", "model.n_heads=2", "model.vocab_size=5", "model.max_len=50",
                         "model.positional=sinusoidal"};
    const char *d10[] = {"model.d_model=10", "model.n_heads=2", "model.vocab_size=5", "model.max_len=7",
                         "model.positional=sinusoidal"};
    const char *const *cases[2] = {d16, d10};
    for (int k = 0; k < 2; k++) {
        me_config cfg;
        make_config(&cfg, cases[k], 5);
        me_model m;
        me_error err = {0};
        assert_int_equal(me_model_build(&m, &cfg, &err), ME_OK);
        assert_int_equal(me_params_find(&m.params, "pos_embed.weight"), -1); /* a table, not a parameter */
        assert_int_equal(me_model_alloc(&m, 1, 4, &err), ME_OK);
        assert_non_null(m.sin_pos);
        int d = cfg.model.d_model;
        for (int pos = 0; pos < cfg.model.max_len; pos++)
            for (int j = 0; j < d; j++) {
                double want = sinusoid(pos, j, d), got = m.sin_pos[(size_t)pos * d + j];
                if (!(fabs(got - want) <= 1e-6)) {
                    print_error("D=%d PE(%d, %d) = %.9g, want %.9g\n", d, pos, j, got, want);
                    fail();
                }
            }
        /* spot values: PE(0, even) = 0, PE(0, odd) = 1, PE(1, 0) = sin 1 */
        assert_true(m.sin_pos[0] == 0.0f && m.sin_pos[1] == 1.0f);
        assert_true(fabs(m.sin_pos[d] - sin(1.0)) < 1e-7);
        me_model_free(&m);
    }
}

static void build_should_refuse_an_absurd_d_model_naming_its_origin_and_the_memory_needed(void **state) {
    (void)state;
    const char *sets[] = {"model.d_model=1000000000", "model.n_heads=1", "model.vocab_size=8"};
    me_config cfg;
    make_config(&cfg, sets, N_OF(sets));
    me_model m;
    me_error err = {0};
    assert_int_equal(me_model_build(&m, &cfg, &err), ME_ERR_CONFIG);
    assert_int_equal(err.status, ME_ERR_CONFIG);
    /* nothing was allocated and the model is safe to free */
    assert_null(m.params.data);
    assert_null(m.params.grad);
    me_model_free(&m);
    if (!strstr(err.msg, "--set model.d_model=1000000000") || !strstr(err.msg, "GiB")) {
        print_error("message does not name the origin and the memory: %s\n", err.msg);
        fail();
    }
    /* the bytes it names: 16 per parameter (values, gradients, two AdamW moments) */
    double want_gib = (double)me_model_param_count(&cfg.model) * 16.0 / 1073741824.0;
    char want[64];
    snprintf(want, sizeof want, "%.1f GiB", want_gib);
    if (!strstr(err.msg, want)) {
        print_error("message does not name %s: %s\n", want, err.msg);
        fail();
    }
    /* a count that overflows size_t is refused the same way */
    const char *sets2[] = {"model.d_model=2147483646", "model.n_heads=1", "model.vocab_size=8"};
    make_config(&cfg, sets2, N_OF(sets2));
    assert_int_equal(me_model_build(&m, &cfg, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "--set model.d_model=2147483646"));
    me_model_free(&m);
}

/* The one refusal of sizes beyond the machine's memory, against the machine's size from sysconf. */
static void memory_refusal_should_compare_need_plus_held_with_the_machine_and_say_both(void **state) {
    (void)state;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) skip(); /* unknown size: nothing is refused */
    double machine = (double)pages * (double)page;
    me_error err = {0};
    assert_int_equal(me_refuse_beyond_memory(1.0, 0.0, NULL, &err, "one byte"), ME_OK);
    assert_int_equal(me_refuse_beyond_memory(machine / 2, machine / 4, NULL, &err, "half"), ME_OK);
    assert_int_equal(me_refuse_beyond_memory(2 * machine, 0.0, "; try less", &err, "thing %d needs %.1f GiB", 7,
                                             2 * machine / 1073741824.0),
                     ME_ERR_CONFIG);
    char want[256];
    snprintf(want, sizeof want, "thing 7 needs %.1f GiB, but this machine has %.1f GiB; try less",
             2 * machine / 1073741824.0, machine / 1073741824.0);
    assert_string_equal(err.msg, want);
    assert_int_equal(err.status, ME_ERR_CONFIG);
    /* what is already held counts against the machine too */
    assert_int_equal(me_refuse_beyond_memory(machine / 2, machine, NULL, &err, "the rest"), ME_ERR_CONFIG);
    snprintf(want, sizeof want, "the rest, but this machine has %.1f GiB", machine / 1073741824.0);
    assert_string_equal(err.msg, want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_refusal_should_compare_need_plus_held_with_the_machine_and_say_both),
        cmocka_unit_test(tag_model_with_learned_positions_and_ignored_targets_should_match_finite_differences),
        cmocka_unit_test(tag_model_with_sinusoidal_positions_pre_ln_and_dropout_should_match_finite_differences),
        cmocka_unit_test(classify_model_with_mean_pooling_over_padding_should_match_finite_differences),
        cmocka_unit_test(classify_model_with_sinusoidal_positions_and_dropout_should_match_finite_differences),
        cmocka_unit_test(tag_loss_should_equal_naive_cross_entropy_over_counted_targets),
        cmocka_unit_test(classify_loss_should_equal_naive_cross_entropy_of_mean_pooled_outputs),
        cmocka_unit_test(loss_should_be_nan_and_backward_a_no_op_when_every_target_is_ignored),
        cmocka_unit_test(sinusoidal_table_should_match_its_formula),
        cmocka_unit_test(build_should_refuse_an_absurd_d_model_naming_its_origin_and_the_memory_needed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
