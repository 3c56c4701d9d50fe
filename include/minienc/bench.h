/* Benchmark of full training steps of an encoder stack on random data:
 * forward, mean-squared-error loss against a random target, backward, AdamW update.
 *
 * FLOPs of one step (matmuls only; T = B*S tokens, D = d_model, F = d_ff, L = n_layers):
 *   forward per layer  6 T D^2 (qkv) + 2 T D^2 (out_proj) + 4 B S^2 D (scores and weights*values)
 *                      + 4 T D F (linear1, linear2)
 *   backward           twice the forward (gradients for both inputs and weights)
 *   step               3 L (8 T D^2 + 4 B S^2 D + 4 T D F), less 6 T D^2 for post-LN: the stack's input
 *                      needs no gradient, so the first in_proj's input gradient is not computed
 *                      (pre-LN needs it for the first norm1's gamma and beta) */
#ifndef MINIENC_BENCH_H
#define MINIENC_BENCH_H

#include <stddef.h>

#include "minienc/config.h"
#include "minienc/dist.h"
#include "minienc/status.h"

typedef struct {
    int batch, seq, steps, warmup;
    int profile; /* also time each operation of the step (the result's prof rows) */
    /* data-parallel group (dist.h), NULL: this process alone. In a group every rank runs its contiguous
     * shard of the batch, the gradients are summed across ranks inside each timed step, and the loss
     * is the whole batch's. */
    me_dist *dist;
    /* alone (no dist): the timed steps in this many blocks (at most ME_BENCH_ROUNDS_MAX, at most one per
     * step), each followed by one timed sgemm ME_BENCH_SGEMM_N^3 (after one warm-up call): the machine's
     * rate is measured in the same minutes as the step it is compared with, so a machine whose speed
     * drifts (a shared host) moves both. 0: no reference. */
    int sgemm_rounds;
    /* > 1 (alone only): the step as train.thread_shards runs it, the batch split into this many shards,
     * each whole forward and backward pass on one thread, their gradients summed (the same step
     * training runs). Memory is the step's: training also keeps the main model's activations for its evaluations. */
    int thread_shards;
} me_bench_options;

#define ME_BENCH_ROUNDS_MAX 64
#define ME_BENCH_SGEMM_N 2048

/* One row of the step profile: an operation's median milliseconds per step over the timed steps, in
 * the forward pass and in the backward pass with the update (a negative value: not applicable).
 * The matmul rows include their bias; "synchronisation" is the fork/join of the kernels' parallel
 * regions (regions per step x the cost of an empty region measured in the same run, taken out of
 * the rows they occurred in) plus any measured waiting and, with thread shards, the sum of their
 * gradients; "other" is the step's remainder (the MSE loss, clearing the gradients, the timers). */
typedef struct {
    const char *name; /* static */
    double forward_ms, backward_ms, total_ms;
} me_bench_prof_row;

#define ME_BENCH_PROF_MAX 16

typedef struct {
    double ms_median, ms_min, ms_max;
    double ms_reduce;               /* in a group: median time of the gradient sum's completion */
    double tokens_per_s;
    double gflop_per_step, gflops;
    double loss_first, loss_last;   /* MSE at the first and last timed step (should fall) */
    size_t param_bytes, grad_bytes, optim_bytes, activation_bytes, io_bytes;
    size_t workspace_bytes;         /* backward workspace (not counted as needed) */
    size_t needed_bytes;            /* sum of the five above */
    size_t rss_before, rss_peak;    /* resident set sizes (bytes) before building and at the peak */
    /* with options.profile: rows with any time, in a fixed order, "other" last */
    me_bench_prof_row prof[ME_BENCH_PROF_MAX];
    int n_prof;
    double prof_step_ms;            /* median step of the profiled steps */
    double region_us;               /* one empty parallel region (fork and join), microseconds */
    double regions_per_step;        /* parallel regions the kernels entered per step */
    /* with options.sgemm_rounds: the rounds, the median sgemm GFLOP/s over them and the median over
     * them of (the block's step GFLOP/s, from its median step) / (the round's sgemm GFLOP/s) */
    int sgemm_rounds;
    double sgemm_gflops, sgemm_ratio;
} me_bench_result;

/* Closed-form matmul FLOPs of one training step (see above). */
double me_bench_step_flops(const me_model_config *cfg, int batch, int seq);

/* The default of me_bench_options.sgemm_rounds: as many blocks as the timed steps hold references'
 * worth of arithmetic (ME_BENCH_SGEMM_N^3 multiply-adds each), at least 3, at most one per step (and
 * ME_BENCH_ROUNDS_MAX). On a machine whose speed drifts within seconds the step and the reference are
 * then taken in the same second or two: a step of the seed block holds about two references, so each
 * of its steps is followed by one; a toy model's 200 steps hold a fraction of one, so they run in 3
 * blocks. */
int me_bench_auto_rounds(const me_model_config *cfg, int batch, int seq, int steps);

/* One matmul of the step as the encoder calls me_matmul: C[m,n] = op(A)[m,k] op(B)[k,n] with the step's
 * leading dimensions, `count` times per step. per_head: one call per (example, head) pair, the pairs
 * spread over the threads and each call on one thread. */
typedef struct {
    const char *site; /* the profile row: "in_proj", "attention", "out_proj", "linear1", "linear2" */
    const char *what; /* "forward", "dW", "dX", "scores", "weights x values", "d scores", "dV", "dQ", "dK" */
    int trans_a, trans_b, m, n, k, lda, ldb, ldc;
    int per_head;
    double count;
} me_bench_matmul;

#define ME_BENCH_MATMULS_MAX 18

/* The step's matmuls for cfg at batch x seq (bench's step: the stack's input needs no gradient) into
 * out[ME_BENCH_MATMULS_MAX]; returns how many. 2 m n k count summed over them is
 * me_bench_step_flops. */
int me_bench_step_matmuls(const me_model_config *cfg, int batch, int seq, me_bench_matmul *out);

/* Median seconds of one call of that matmul through me_matmul on the current threads (per_head: on one
 * thread), over 5 rounds of enough calls to take about 2 ms; 0 when out of memory. */
double me_bench_matmul_seconds(const me_bench_matmul *mm);

/* Runs the benchmark: cfg's encoder stack (dropout forced to 0), AdamW with PyTorch's defaults. */
me_status me_bench_run(const me_model_config *cfg, const me_bench_options *o, me_bench_result *r, me_error *err);

/* Measured GFLOP/s of C[n,n] = A[n,n] B[n,n] through me_matmul on the current threads (median of reps,
 * at most 16, after one warm-up call). */
double me_bench_sgemm_gflops(int n, int reps);

#endif
