/* Data parallelism without MPI (the MPI runs are tests/e2e_mpi.sh):
 *   - shards: a batch split into contiguous shards, each normalised by the whole batch's target count,
 *     with counter-based dropout keyed on the whole batch's example index, sums to the whole batch's
 *     gradient and loss (tag and classify, uneven shards with their own padded lengths, dropout on);
 *   - me_shard_range against its formula;
 *   - agreements, rank-ordered sums and checksum comparisons over a scripted in-process group (the
 *     other ranks' contributions are fixed arrays), against hand-computed outcomes. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minienc/dist.h"
#include "minienc/model.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- shards of a batch sum to the batch ---- */

static me_config shard_config(const char *task) {
    const char *sets[] = {"model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.n_layers=2",
                          "model.vocab_size=7", "model.max_len=10", "model.dropout=0.2", task};
    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    for (size_t i = 0; i < N_OF(sets); i++) assert_int_equal(me_config_set(&c, sets[i], &err), ME_OK);
    assert_int_equal(me_config_validate(&c, &err), ME_OK);
    return c;
}

static void build(me_model *m, const me_config *c, int b, int s) {
    me_error err = {0};
    assert_int_equal(me_model_build(m, c, &err), ME_OK);
    me_rng rng;
    me_rng_seed(&rng, 5);
    me_model_init_weights(m, &rng);
    assert_int_equal(me_model_alloc(m, b, s, &err), ME_OK);
}

/* Examples [lo, hi) of a batch whose example e has length len[e] (<= S), repacked at their own
 * padded length (the longest among them), as me_dataset_batch makes a shard's batch. */
static int pack(const int32_t *tok, const int32_t *tgt, const int *len, int S, int lo, int hi, int tag, int32_t *ptok,
                uint8_t *ppad, int32_t *ptgt) {
    int s = 0;
    for (int e = lo; e < hi; e++) s = len[e] > s ? len[e] : s;
    for (int e = lo; e < hi; e++) {
        for (int i = 0; i < s; i++) {
            size_t at = (size_t)(e - lo) * s + i;
            ptok[at] = i < len[e] ? tok[e * S + i] : 0;
            ppad[at] = i >= len[e];
            if (tag) ptgt[at] = i < len[e] ? tgt[e * S + i] : -1;
        }
        if (!tag) ptgt[e - lo] = tgt[e];
    }
    return s;
}

static void shards_should_sum_to_the_whole_batch(const char *task) {
    enum { B = 7, S = 10 };
    me_config cfg = shard_config(task);
    int tag = cfg.data.task == ME_TASK_TAG;
    int len[B] = {10, 3, 7, 1, 9, 4, 6};
    int32_t tok[B * S], tgt[B * S];
    me_rng rng;
    me_rng_seed(&rng, 9);
    size_t total = 0;
    for (int e = 0; e < B; e++) {
        for (int i = 0; i < S; i++) {
            tok[e * S + i] = (int32_t)me_rng_below(&rng, 7);
            tgt[e * S + i] = (int32_t)me_rng_below(&rng, 7);
        }
        total += tag ? (size_t)len[e] : 1;
    }
    int32_t ptok[B * S], ptgt[B * S];
    uint8_t ppad[B * S];
    me_model whole, part;
    build(&whole, &cfg, B, S);
    build(&part, &cfg, B, S);
    me_dropout_key key = {.key = {1, 2, 3, 4}, .step = 17, .example0 = 0};
    /* the whole batch */
    int s = pack(tok, tgt, len, S, 0, B, tag, ptok, ppad, ptgt);
    me_params_zero_grad(&whole.params);
    double loss = me_model_forward(&whole, ptok, ppad, ptgt, B, s, 1, &key, NULL);
    assert_int_equal(whole.n_targets, total);
    me_model_backward(&whole);
    /* three uneven shards, gradients added up in one block (as the rank-ordered sum does) */
    const int cut[] = {0, 2, 3, 7};
    double loss_sum = 0;
    me_params_zero_grad(&part.params);
    for (int k = 0; k < 3; k++) {
        int ss = pack(tok, tgt, len, S, cut[k], cut[k + 1], tag, ptok, ppad, ptgt);
        key.example0 = (uint64_t)cut[k];
        me_model_forward(&part, ptok, ppad, ptgt, cut[k + 1] - cut[k], ss, 1, &key, NULL);
        loss_sum += part.loss_sum;
        me_model_backward_shard(&part, total);
    }
    /* float32 sums in another order: the gradient to 1e-5 of its largest magnitude */
    me_check_close(task, part.params.grad, whole.params.grad, whole.params.total, 1e-5);
    double rel = fabs(loss_sum / (double)total - loss) / fabs(loss);
    if (!(rel <= 1e-6)) {
        print_error("%s: shards' loss %.9g, whole batch's %.9g\n", task, loss_sum / (double)total, loss);
        fail();
    }
    me_model_free(&whole);
    me_model_free(&part);
}

static void tag_shards_should_sum_to_the_whole_batch(void **state) {
    (void)state;
    shards_should_sum_to_the_whole_batch("data.task=tag");
}

static void classify_shards_should_sum_to_the_whole_batch(void **state) {
    (void)state;
    shards_should_sum_to_the_whole_batch("data.task=classify");
}

static void shard_range_should_split_contiguously_and_evenly(void **state) {
    (void)state;
    const size_t ns[] = {0, 1, 5, 32, 33, 1000003};
    for (size_t a = 0; a < N_OF(ns); a++)
        for (int parts = 1; parts <= 9; parts++) {
            size_t prev = 0;
            for (int i = 0; i < parts; i++) {
                size_t lo, hi;
                me_shard_range(ns[a], parts, i, &lo, &hi);
                assert_int_equal(lo, prev);
                assert_int_equal(lo, ns[a] * (size_t)i / (size_t)parts);
                assert_true(hi - lo == ns[a] / (size_t)parts || hi - lo == ns[a] / (size_t)parts + 1);
                prev = hi;
            }
            assert_int_equal(prev, ns[a]);
        }
}

/* ---- a scripted group: this process is rank `rank` of `size`; the others' contributions to the
 * next allgather come from `others` (their values in rank order, this rank's slot skipped) ---- */

typedef struct {
    int rank, size;
    const double *others;
    int calls;
} script;

static me_status script_allgather(void *impl, const double *in, int n, double *out, me_error *err) {
    (void)err;
    script *s = impl;
    for (int r = 0, k = 0; r < s->size; r++) {
        if (r == s->rank) memcpy(out + (size_t)r * n, in, sizeof(double) * (size_t)n);
        else memcpy(out + (size_t)r * n, s->others + (size_t)k++ * n, sizeof(double) * (size_t)n);
    }
    s->calls++;
    return ME_OK;
}

static const me_dist_ops script_ops = {.allgather = script_allgather};

static me_dist group(script *s, int rank, int size, const double *others) {
    s->rank = rank;
    s->size = size;
    s->others = others;
    s->calls = 0;
    me_dist d = {.rank = rank, .size = size, .fail_rank = -1, .ops = &script_ops, .impl = s};
    return d;
}

static void agreement_should_fail_everywhere_and_name_the_lowest_failing_rank(void **state) {
    (void)state;
    script s;
    me_error err = {0};
    /* everyone fine; rank 2 asks to stop: all stop */
    const double fine[] = {ME_OK, 0, ME_OK, 1, ME_OK, 0};
    me_dist d = group(&s, 1, 4, fine);
    int stop = 0;
    assert_int_equal(me_dist_agree(&d, ME_OK, &stop, &err), ME_OK);
    assert_int_equal(stop, 1);
    assert_int_equal(d.fail_rank, -1);
    /* ranks 2 and 3 fail: rank 1 (fine) returns rank 2's status and does not report */
    const double bad[] = {ME_OK, 0, ME_ERR_DATA, 0, ME_ERR_IO, 0};
    d = group(&s, 1, 4, bad);
    assert_int_equal(me_dist_agree(&d, ME_OK, NULL, &err), ME_ERR_DATA);
    assert_int_equal(d.fail_rank, 2);
    assert_non_null(strstr(err.msg, "rank 2"));
    /* this rank fails too, and is the lowest: it keeps its own message */
    me_error_set(&err, ME_ERR_CONFIG, "my own message");
    d = group(&s, 1, 4, bad);
    assert_int_equal(me_dist_agree(&d, ME_ERR_CONFIG, NULL, &err), ME_ERR_CONFIG);
    assert_int_equal(d.fail_rank, 1);
    assert_string_equal(err.msg, "my own message");
    /* alone: the status itself, no collective */
    assert_int_equal(me_dist_agree(NULL, ME_ERR_NUMERIC, NULL, &err), ME_ERR_NUMERIC);
}

static void sums_should_add_in_rank_order(void **state) {
    (void)state;
    script s;
    me_error err = {0};
    /* 1e16 + 1 rounds back to 1e16 in double: ((1e16 + 1) + -1e16) + 1 = 1, while the exact sum is 2 */
    const double others[] = {1e16, -1e16, 1.0};
    for (int rank = 0; rank < 4; rank++) {
        /* this rank contributes 1.0 at its own place; the values in rank order: */
        double v[4];
        for (int r = 0, k = 0; r < 4; r++) v[r] = r == rank ? 1.0 : others[k++];
        double want = ((v[0] + v[1]) + v[2]) + v[3], one = 1.0, got;
        me_dist d = group(&s, rank, 4, others);
        assert_int_equal(me_dist_sum(&d, &one, 1, &got, &err), ME_OK);
        assert_memory_equal(&got, &want, sizeof got);
    }
}

static void checksums_should_name_the_ranks_that_differ(void **state) {
    (void)state;
    script s;
    me_error err = {0};
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, y[9];
    memcpy(y, x, sizeof x);
    uint64_t h = me_dist_hash(ME_DIST_HASH_INIT, x, 9);
    assert_true(h == me_dist_hash(ME_DIST_HASH_INIT, y, 9));
    for (int i = 0; i < 9; i++) { /* one bit anywhere, the odd tail included */
        uint32_t bits;
        memcpy(&bits, &y[i], 4);
        bits ^= 1u << (i * 3);
        memcpy(&y[i], &bits, 4);
        assert_true(h != me_dist_hash(ME_DIST_HASH_INIT, y, 9));
        memcpy(y, x, sizeof x);
    }
    assert_true(h != me_dist_hash(ME_DIST_HASH_INIT, x, 8));
    double hi = (double)(h >> 32), lo = (double)(h & 0xffffffffu);
    const double same[] = {hi, lo, hi, lo}, differ[] = {hi, lo, hi, lo + 1};
    me_dist d = group(&s, 0, 3, same);
    assert_int_equal(me_dist_check_same(&d, h, "step 5", &err), ME_OK);
    d = group(&s, 0, 3, differ);
    assert_int_equal(me_dist_check_same(&d, h, "step 5", &err), ME_ERR_CHECK);
    assert_int_equal(d.fail_rank, 0);
    assert_non_null(strstr(err.msg, "step 5: rank 2 holds different values"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tag_shards_should_sum_to_the_whole_batch),
        cmocka_unit_test(classify_shards_should_sum_to_the_whole_batch),
        cmocka_unit_test(shard_range_should_split_contiguously_and_evenly),
        cmocka_unit_test(agreement_should_fail_everywhere_and_name_the_lowest_failing_rank),
        cmocka_unit_test(sums_should_add_in_rank_order),
        cmocka_unit_test(checksums_should_name_the_ranks_that_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
