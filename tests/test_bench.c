/* Tests for the benchmark's arithmetic and its step profile.
 *
 * References: the step's matmul FLOPs counted by hand for a small config (every product of the
 * forward and backward passes listed); the unprofiled run itself, which a profiled run must repeat
 * bit for bit (profiling only reads clocks); the profile's own definition (rows with time, "other"
 * last, forward + backward = total). No test here looks at how long anything took. */
#include "test_util.h"

#include <math.h>
#include <string.h>

#include "minienc/bench.h"
#include "minienc/config.h"
#include "minienc/ops.h"

static me_model_config small_config(int norm_first) {
    me_config c;
    me_config_defaults(&c);
    c.model.d_model = 16;
    c.model.n_heads = 2;
    c.model.d_ff = 24;
    c.model.n_layers = 2;
    c.model.norm_first = norm_first;
    return c.model;
}

static void step_flops_should_count_every_matmul_of_the_step(void **state) {
    (void)state;
    /* B 2, S 3, D 16, F 24, 2 layers; T = 6 tokens. Per layer forward: qkv 2*6*16*48, out_proj
     * 2*6*16*16, scores and weights x values 2 * (2*2*3*3*16)... over heads: 2 B S^2 D each, linear1
     * 2*6*16*24, linear2 2*6*24*16. Backward: two products per forward product. */
    double t = 6, d = 16, f = 24, b = 2, s = 3;
    double fwd = 2 * t * d * 3 * d + 2 * t * d * d + 2 * (2 * b * s * s * d) + 2 * t * d * f + 2 * t * f * d;
    double post = 3 * 2 * fwd - 2 * t * d * 3 * d; /* the first qkv's input gradient is not formed */
    double pre = 3 * 2 * fwd;
    me_model_config c = small_config(0);
    assert_true(fabs(me_bench_step_flops(&c, 2, 3) - post) < 1e-6 * post);
    c = small_config(1);
    assert_true(fabs(me_bench_step_flops(&c, 2, 3) - pre) < 1e-6 * pre);
}

/* Two derivations of the step's FLOPs: the closed form and the list of its matmuls. */
static void step_matmuls_should_add_up_to_the_step_flops(void **state) {
    (void)state;
    for (int pre = 0; pre < 2; pre++) {
        me_model_config c = small_config(pre);
        me_bench_matmul mm[ME_BENCH_MATMULS_MAX];
        int n = me_bench_step_matmuls(&c, 2, 3, mm);
        double sum = 0.0;
        for (int i = 0; i < n; i++) sum += 2.0 * mm[i].m * mm[i].n * mm[i].k * mm[i].count;
        double want = me_bench_step_flops(&c, 2, 3);
        if (fabs(sum - want) > 1e-9 * want) fail_msg("norm_first %d: matmuls %.0f FLOPs, formula %.0f", pre, sum, want);
        assert_int_equal(n, 18); /* two layers: post-LN keeps the second layer's in_proj dX */
    }
    /* one layer post-LN: no in_proj input gradient at all */
    me_model_config c = small_config(0);
    c.n_layers = 1;
    me_bench_matmul mm[ME_BENCH_MATMULS_MAX];
    assert_int_equal(me_bench_step_matmuls(&c, 2, 3, mm), 17);
}

static void profiled_steps_should_equal_unprofiled_ones_bit_for_bit(void **state) {
    (void)state;
    me_ops_set_threads(1);
    me_model_config c = small_config(0);
    me_bench_options o = {.batch = 3, .seq = 5, .steps = 4, .warmup = 1, .profile = 0};
    me_bench_result plain, prof;
    me_error err = {0};
    assert_int_equal(me_bench_run(&c, &o, &plain, &err), ME_OK);
    o.profile = 1;
    assert_int_equal(me_bench_run(&c, &o, &prof, &err), ME_OK);
    assert_memory_equal(&plain.loss_first, &prof.loss_first, sizeof(double));
    assert_memory_equal(&plain.loss_last, &prof.loss_last, sizeof(double));
    assert_int_equal(plain.n_prof, 0);
}

/* Thread shards (train.thread_shards as bench runs it) compute the unsplit step up to summation order:
 * every timed step's loss agrees to 1e-5 relative after several updates, with 3 shards on 2 threads and on
 * 1 thread bit for bit the same (the result depends on the shards, not on the threads). The sgemm rounds
 * give a share that is a positive finite number. */
static void thread_shards_should_match_the_unsplit_step(void **state) {
    (void)state;
    me_model_config c = small_config(1);
    me_bench_options o = {.batch = 7, .seq = 5, .steps = 6, .warmup = 1, .sgemm_rounds = 2};
    me_bench_result plain, two, one;
    me_error err = {0};
    me_ops_set_threads(2);
    assert_int_equal(me_bench_run(&c, &o, &plain, &err), ME_OK);
    o.sgemm_rounds = 0; /* each round is one 2048^3 product: once is enough */
    o.thread_shards = 3;
    assert_int_equal(me_bench_run(&c, &o, &two, &err), ME_OK);
    me_ops_set_threads(1);
    assert_int_equal(me_bench_run(&c, &o, &one, &err), ME_OK);
    assert_true(fabs(two.loss_first - plain.loss_first) <= 1e-5 * fabs(plain.loss_first));
    assert_true(fabs(two.loss_last - plain.loss_last) <= 1e-5 * fabs(plain.loss_last));
    assert_true(two.loss_last < two.loss_first);
    assert_memory_equal(&one.loss_last, &two.loss_last, sizeof(double));
    assert_int_equal(plain.sgemm_rounds, 2);
    assert_true(isfinite(plain.sgemm_ratio) && plain.sgemm_ratio > 0.0 && plain.sgemm_gflops > 0.0);
}

/* The default rounds: one block per reference's worth of arithmetic (2 * 2048^3 FLOP), at least 3, at most
 * one per step. The seed block's step (36.2 GFLOP by its matmuls, about two references) gets a reference
 * after every step; 200 steps of the toy model (0.30 GFLOP each, 3.5 references in all) get 3 blocks. */
static void auto_rounds_should_give_each_block_a_reference_worth_of_work(void **state) {
    (void)state;
    me_model_config seed = small_config(0), toy = small_config(0);
    seed.d_model = 512, seed.n_heads = 8, seed.d_ff = 2048, seed.n_layers = 1;
    toy.d_model = 64, toy.n_heads = 4, toy.d_ff = 256;
    double ref = 2.0 * ME_BENCH_SGEMM_N * ME_BENCH_SGEMM_N * ME_BENCH_SGEMM_N;
    double seed_step = me_bench_step_flops(&seed, 32, 64), toy_step = me_bench_step_flops(&toy, 32, 16);
    assert_true(seed_step > ref && seed_step < 3.0 * ref);
    assert_int_equal(me_bench_auto_rounds(&seed, 32, 64, 10), 10);
    assert_int_equal(me_bench_auto_rounds(&seed, 32, 64, 1), 1);
    assert_int_equal(me_bench_auto_rounds(&seed, 32, 64, 1000), ME_BENCH_ROUNDS_MAX);
    assert_int_equal(me_bench_auto_rounds(&toy, 32, 16, 200), 3);
    int held = (int)(2000.0 * toy_step / ref);
    assert_true(held > 3 && held < 2000);
    assert_int_equal(me_bench_auto_rounds(&toy, 32, 16, 2000), held < ME_BENCH_ROUNDS_MAX ? held : ME_BENCH_ROUNDS_MAX);
    assert_int_equal(me_bench_auto_rounds(&toy, 32, 16, 2), 2);
}

static int find_row(const me_bench_result *r, const char *name) {
    for (int k = 0; k < r->n_prof; k++)
        if (strcmp(r->prof[k].name, name) == 0) return k;
    return -1;
}

static void profile_should_name_every_operation_of_the_step(void **state) {
    (void)state;
    me_ops_set_threads(2);
    me_model_config c = small_config(1);
    me_bench_options o = {.batch = 4, .seq = 8, .steps = 3, .warmup = 1, .profile = 1};
    me_bench_result r;
    me_error err = {0};
    assert_int_equal(me_bench_run(&c, &o, &r, &err), ME_OK);
    me_ops_set_threads(1);
    const char *must[] = {"matmul in_proj (qkv)", "matmul out_proj", "matmul linear1", "matmul linear2",
                          "attention", "LayerNorm", "elementwise", "optimizer"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
        int k = find_row(&r, must[i]);
        if (k < 0) print_error("no profile row '%s'\n", must[i]);
        assert_true(k >= 0);
    }
    assert_true(find_row(&r, "matmul head") < 0); /* bench runs the encoder stack alone */
    assert_string_equal(r.prof[r.n_prof - 1].name, "other");
    for (int k = 0; k < r.n_prof; k++) {
        const me_bench_prof_row *row = &r.prof[k];
        assert_true(isfinite(row->total_ms) && row->total_ms >= 0.0);
        if (row->forward_ms >= 0.0 && row->backward_ms >= 0.0)
            assert_true(fabs(row->forward_ms + row->backward_ms - row->total_ms) <= 1e-9 * (1.0 + row->total_ms));
    }
    int opt = find_row(&r, "optimizer");
    assert_true(r.prof[opt].forward_ms < 0.0); /* the update belongs to no forward pass */
    assert_true(r.regions_per_step >= 0.0 && r.region_us > 0.0); /* an empty region still takes time */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(step_flops_should_count_every_matmul_of_the_step),
        cmocka_unit_test(step_matmuls_should_add_up_to_the_step_flops),
        cmocka_unit_test(profiled_steps_should_equal_unprofiled_ones_bit_for_bit),
        cmocka_unit_test(thread_shards_should_match_the_unsplit_step),
        cmocka_unit_test(auto_rounds_should_give_each_block_a_reference_worth_of_work),
        cmocka_unit_test(profile_should_name_every_operation_of_the_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
