#include "minienc/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "minienc/encoder.h"
#include "minienc/ops.h"
#include "minienc/optim.h"
#include "minienc/params.h"
#include "minienc/rng.h"

#include "internal.h"
#include "profile.h"


/* Current resident set size from /proc/self/statm (0 if unavailable). */
static size_t rss_now(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (size_t)resident * (size_t)page : 0;
}

/* Peak resident set size of this process image: VmHWM from /proc/self/status. (getrusage's ru_maxrss
 * survives execve, so a child of a large process, e.g. a Python benchmark driver, would report its
 * parent's peak.) */
static size_t rss_peak(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %zu kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024u;
}

/* Per-step profile columns: every operation in both phases, then "other", the step, the regions. */
enum { COL_OTHER = ME_PROF_N * ME_PROF_PHASES, COL_STEP, COL_REGIONS, N_COLS };

/* One step's profile row from the accumulated totals: fork/join time (regions x the cost of an empty
 * region) moves from each operation to synchronisation; "other" is what no scope timed. */
static void profile_step(double *row, const me_prof_totals *tot, double region_s, double step_s) {
    double timed = 0.0, regions = 0.0;
    for (int ph = 0; ph < ME_PROF_PHASES; ph++) row[ME_PROF_SYNC * ME_PROF_PHASES + ph] = tot->s[ME_PROF_SYNC][ph];
    for (int op = 0; op < ME_PROF_N; op++)
        for (int ph = 0; ph < ME_PROF_PHASES; ph++) {
            timed += tot->s[op][ph];
            regions += (double)tot->regions[op][ph];
            if (op == ME_PROF_SYNC) continue;
            double fj = (double)tot->regions[op][ph] * region_s;
            if (fj > tot->s[op][ph]) fj = tot->s[op][ph];
            row[op * ME_PROF_PHASES + ph] = tot->s[op][ph] - fj;
            row[ME_PROF_SYNC * ME_PROF_PHASES + ph] += fj;
        }
    row[COL_OTHER] = step_s - timed > 0.0 ? step_s - timed : 0.0;
    row[COL_STEP] = step_s;
    row[COL_REGIONS] = regions;
}

/* The result's rows: per column the median over the steps (prof[steps][N_COLS], reordered). */
static void profile_rows(me_bench_result *r, double *prof, int steps) {
    double *col = malloc((size_t)steps * sizeof *col);
    if (!col) return;
    double med[N_COLS];
    for (int c = 0; c < N_COLS; c++) {
        for (int i = 0; i < steps; i++) col[i] = prof[(size_t)i * N_COLS + c];
        med[c] = me_median(col, (size_t)steps) * (c == COL_REGIONS ? 1.0 : 1000.0); /* ms */
    }
    free(col);
    r->n_prof = 0;
    for (int op = 0; op < ME_PROF_N; op++) {
        double f = med[op * ME_PROF_PHASES + ME_PROF_FORWARD], b = med[op * ME_PROF_PHASES + ME_PROF_BACKWARD];
        if (f <= 0.0 && b <= 0.0) continue;
        r->prof[r->n_prof++] = (me_bench_prof_row){me_prof_names[op], op == ME_PROF_OPTIMIZER ? -1.0 : f, b, f + b};
    }
    r->prof[r->n_prof++] = (me_bench_prof_row){"other", -1.0, -1.0, med[COL_OTHER]};
    r->prof_step_ms = med[COL_STEP];
    r->regions_per_step = med[COL_REGIONS];
}

double me_bench_step_flops(const me_model_config *c, int batch, int seq) {
    double t = (double)batch * seq, d = c->d_model, f = c->d_ff;
    double fwd = 8.0 * t * d * d + 4.0 * batch * (double)seq * seq * d + 4.0 * t * d * f;
    /* post-LN: nothing needs dL/dx of the stack's input, so the first in_proj's input gradient
     * (2 T 3D D) is not computed (PyTorch's autograd skips it too); pre-LN needs it for norm1's gradients */
    double skipped = c->norm_first ? 0.0 : 6.0 * t * d * d;
    return 3.0 * c->n_layers * fwd - skipped;
}

int me_bench_step_matmuls(const me_model_config *c, int batch, int seq, me_bench_matmul *out) {
    int t = batch * seq, s = seq, d = c->d_model, f = c->d_ff, dh = d / c->n_heads, d3 = 3 * d;
    double l = c->n_layers, heads = (double)c->n_layers * batch * c->n_heads;
    /* post-LN: the first layer's in_proj input gradient is not formed (me_encoder_backward without dx) */
    double in_dx = c->norm_first ? l : l - 1;
    const me_bench_matmul list[] = {
        {"in_proj", "forward", 0, 1, t, d3, d, d, d, d3, 0, l},
        {"attention", "scores", 0, 1, s, s, dh, d3, d3, s, 1, heads},
        {"attention", "weights x values", 0, 0, s, dh, s, s, d3, d, 1, heads},
        {"out_proj", "forward", 0, 1, t, d, d, d, d, d, 0, l},
        {"linear1", "forward", 0, 1, t, f, d, d, d, f, 0, l},
        {"linear2", "forward", 0, 1, t, d, f, f, f, d, 0, l},
        {"linear2", "dW", 1, 0, d, f, t, d, f, f, 0, l},
        {"linear2", "dX", 0, 0, t, f, d, d, f, f, 0, l},
        {"linear1", "dX", 0, 0, t, d, f, f, d, d, 0, l},
        {"linear1", "dW", 1, 0, f, d, t, f, d, d, 0, l},
        {"out_proj", "dX", 0, 0, t, d, d, d, d, d, 0, l},
        {"out_proj", "dW", 1, 0, d, d, t, d, d, d, 0, l},
        {"attention", "d scores", 0, 1, s, s, dh, d, d3, s, 1, heads},
        {"attention", "dV", 1, 0, s, dh, s, s, d, d3, 1, heads},
        {"attention", "dQ", 0, 0, s, dh, s, s, d3, d3, 1, heads},
        {"attention", "dK", 1, 0, s, dh, s, s, d3, d3, 1, heads},
        {"in_proj", "dX", 0, 0, t, d, d3, d3, d, d, 0, in_dx},
        {"in_proj", "dW", 1, 0, d3, d, t, d3, d, d, 0, l},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (list[i].count > 0) out[n++] = list[i];
    return n;
}

static double matmul_rounds(const me_bench_matmul *mm, const float *a, const float *b, float *c) {
    me_matmul(mm->trans_a, mm->trans_b, mm->m, mm->n, mm->k, 1.0f, a, mm->lda, b, mm->ldb, 0.0f, c, mm->ldc);
    double t0 = me_now_s();
    me_matmul(mm->trans_a, mm->trans_b, mm->m, mm->n, mm->k, 1.0f, a, mm->lda, b, mm->ldb, 0.0f, c, mm->ldc);
    double one = me_now_s() - t0, round[5];
    int reps = one > 0 ? (int)(2e-3 / one) : 1000;
    reps = reps < 1 ? 1 : reps > 10000 ? 10000 : reps;
    for (int r = 0; r < 5; r++) {
        t0 = me_now_s();
        for (int i = 0; i < reps; i++)
            me_matmul(mm->trans_a, mm->trans_b, mm->m, mm->n, mm->k, 1.0f, a, mm->lda, b, mm->ldb, 0.0f, c, mm->ldc);
        round[r] = (me_now_s() - t0) / reps;
    }
    return me_median(round, 5);
}

double me_bench_matmul_seconds(const me_bench_matmul *mm) {
    /* A is op(A) stored [m,k] or [k,m], B [k,n] or [n,k], each row lda (ldb, ldc) apart */
    size_t na = (size_t)(mm->trans_a ? mm->k : mm->m) * (size_t)mm->lda;
    size_t nb = (size_t)(mm->trans_b ? mm->n : mm->k) * (size_t)mm->ldb, nc = (size_t)mm->m * (size_t)mm->ldc;
    float *a = me_alloc(na * sizeof *a), *b = me_alloc(nb * sizeof *b), *c = me_alloc(nc * sizeof *c);
    double sec = 0.0;
    if (a && b && c) {
        me_rng rng;
        me_rng_seed(&rng, 11);
        for (size_t i = 0; i < na; i++) a[i] = me_rng_uniform(&rng) - 0.5f;
        for (size_t i = 0; i < nb; i++) b[i] = me_rng_uniform(&rng) - 0.5f;
        int threads = me_ops_threads();
        if (mm->per_head) me_ops_set_threads(1);
        sec = matmul_rounds(mm, a, b, c);
        if (mm->per_head) me_ops_set_threads(threads);
    }
    me_free(a), me_free(b), me_free(c);
    return sec;
}

/* The machine's reference: C[n,n] = A[n,n] B[n,n] through me_matmul, i.e. OpenBLAS's sgemm kernel on
 * our threads, each a block of rows (OpenBLAS's own threads would compete with our OpenMP threads,
 * which keep spinning for a while after every parallel region; measured alone, the two threadings
 * gave the same rate within the machine's noise: 123-153 vs 131-154 GFLOP/s on 2 threads). */
typedef struct {
    int n, warm; /* warm: the first call (OpenBLAS's buffers, first touch of C) is behind us */
    float *a, *b, *c;
} sgemm_ref;

static int sgemm_ref_init(sgemm_ref *s, int n) {
    size_t nn = (size_t)n * n;
    s->n = n, s->warm = 0;
    s->a = me_alloc(nn * sizeof(float)), s->b = me_alloc(nn * sizeof(float)), s->c = me_alloc(nn * sizeof(float));
    if (!s->a || !s->b || !s->c) return 0;
    me_rng rng;
    me_rng_seed(&rng, 7);
    for (size_t i = 0; i < nn; i++) s->a[i] = me_rng_uniform(&rng), s->b[i] = me_rng_uniform(&rng);
    return 1;
}

static void sgemm_ref_free(sgemm_ref *s) { me_free(s->a), me_free(s->b), me_free(s->c); }

/* Median GFLOP/s over reps calls (at most 16), after one warm-up call the first time */
static double sgemm_ref_time(sgemm_ref *s, int reps) {
    int n = s->n;
    if (!s->warm) me_matmul(0, 0, n, n, n, 1.0f, s->a, n, s->b, n, 0.0f, s->c, n);
    s->warm = 1;
    double t[16];
    reps = reps < 1 ? 1 : reps > 16 ? 16 : reps;
    for (int r = 0; r < reps; r++) {
        double t0 = me_now_s();
        me_matmul(0, 0, n, n, n, 1.0f, s->a, n, s->b, n, 0.0f, s->c, n);
        t[r] = me_now_s() - t0;
    }
    return 2.0 * (double)n * n * n / me_median(t, (size_t)reps) / 1e9;
}

int me_bench_auto_rounds(const me_model_config *cfg, int batch, int seq, int steps) {
    double ref = 2.0 * ME_BENCH_SGEMM_N * ME_BENCH_SGEMM_N * ME_BENCH_SGEMM_N;
    double held = (double)steps * me_bench_step_flops(cfg, batch, seq) / ref;
    int most = steps < ME_BENCH_ROUNDS_MAX ? steps : ME_BENCH_ROUNDS_MAX;
    int rounds = held > most ? most : held < 3.0 ? 3 : (int)held;
    return rounds < most ? rounds : most;
}

double me_bench_sgemm_gflops(int n, int reps) {
    sgemm_ref s;
    double g = sgemm_ref_init(&s, n) ? sgemm_ref_time(&s, reps) : 0.0;
    sgemm_ref_free(&s);
    return g;
}

/* The forward pass and the MSE loss of rows [0, b) of x against t into dy[b * row] (scale: 2 / the whole
 * batch's value count); returns the summed squared error. */
static double forward_loss(me_encoder *e, const me_params *p, const float *x, const float *t, float *dy, int b,
                           int seq, size_t row, float scale) {
    double loss = 0.0;
    me_prof_phase(ME_PROF_FORWARD);
    const float *y = me_encoder_forward(e, p, x, NULL, b, seq, 1, NULL); /* dropout 0 */
    for (size_t i = 0; i < (size_t)b * row; i++) {
        float diff = y[i] - t[i];
        loss += (double)diff * diff;
        dy[i] = scale * diff; /* d/dy mean((y - t)^2) */
    }
    return loss;
}

/* Thread shards (options.thread_shards = R > 1): R encoders reading the main parameters, each with its
 * own gradient block and activations for its share of the batch, as train.thread_shards runs them. */
typedef struct {
    int n;
    me_params *p; /* [n] */
    me_encoder *e; /* [n] */
    me_params **grads; /* [n] &p[i] */
    double *loss; /* [n] */
} shards;

static void shards_free(shards *sh) {
    for (int i = 0; i < sh->n; i++) me_encoder_free(&sh->e[i]), me_params_free(&sh->p[i]);
    free(sh->p), free(sh->e), free(sh->grads), free(sh->loss);
    memset(sh, 0, sizeof *sh);
}

static me_status shards_make(shards *sh, int n, const me_model_config *c, float *data, int b, int seq,
                             size_t *act_bytes, size_t *work_bytes, me_error *err) {
    sh->p = calloc((size_t)n, sizeof *sh->p), sh->e = calloc((size_t)n, sizeof *sh->e);
    sh->grads = calloc((size_t)n, sizeof *sh->grads), sh->loss = calloc((size_t)n, sizeof *sh->loss);
    if (!sh->p || !sh->e || !sh->grads || !sh->loss)
        return me_error_set(err, ME_ERR_NOMEM, "out of memory for %d thread shards", n);
    *act_bytes = *work_bytes = 0;
    for (; sh->n < n; sh->n++) {
        size_t lo, hi, saved, work;
        me_shard_range((size_t)b, n, sh->n, &lo, &hi);
        int cap = hi > lo ? (int)(hi - lo) : 1;
        me_params *p = &sh->p[sh->n];
        me_params_init(p);
        sh->grads[sh->n] = p;
        me_encoder *e = &sh->e[sh->n];
        me_status st = me_encoder_register(e, p, "", c, err);
        if (!st) {
            me_params_borrow_data(p, data); /* before the allocation: the gradient block alone */
            st = me_params_alloc(p, err);
        }
        if (!st) st = me_encoder_alloc(e, cap, seq, err);
        if (st) {
            sh->n++; /* freed with the others by shards_free */
            return st;
        }
        me_encoder_activation_bytes(c, cap, seq, &saved, &work);
        *act_bytes += saved;
        *work_bytes += work;
    }
    return ME_OK;
}

/* What a shard's pass reads: the step's inputs, targets and loss gradients (each [b, row]). */
typedef struct {
    shards *sh;
    const float *x, *t;
    float *dy;
    int b, seq;
    size_t row;
    float scale;
} shard_ctx;

static double shard_pass(void *ctx, int i) {
    const shard_ctx *c = ctx;
    size_t lo, hi;
    me_shard_range((size_t)c->b, c->sh->n, i, &lo, &hi);
    if (hi == lo) {
        me_prof_phase(ME_PROF_BACKWARD); /* the wait and the sum that follow belong to the backward */
        return 0.0;
    }
    me_encoder *e = &c->sh->e[i];
    me_params *p = &c->sh->p[i];
    size_t off = lo * c->row;
    double loss = forward_loss(e, p, c->x + off, c->t + off, c->dy + off, (int)(hi - lo), c->seq, c->row, c->scale);
    me_prof_phase(ME_PROF_BACKWARD);
    me_encoder_backward(e, p, NULL, c->dy + off);
    return loss;
}

me_status me_bench_run(const me_model_config *cfg, const me_bench_options *o, me_bench_result *r, me_error *err) {
    memset(r, 0, sizeof *r);
    me_model_config c = *cfg;
    c.dropout = 0.0f;
    me_dist *d = o->dist && o->dist->size > 1 ? o->dist : NULL;
    /* this rank's shard: examples [lo, hi) of the batch */
    size_t lo = 0, hi = (size_t)o->batch;
    if (d) me_shard_range((size_t)o->batch, d->size, d->rank, &lo, &hi);
    int b = (int)(hi - lo), cap = b > 0 ? b : 1;
    /* the libraries' own start-up memory is not the step's: OpenBLAS's per-thread buffers and the OpenMP
     * threads come into being at their first product split over our threads. 512^3: K above 256, so
     * each thread's block goes to OpenBLAS, not to the small-product kernel (ops.c); at 256^3 it did
     * not, and OpenBLAS's buffers then counted as the step's (0.4 MiB, 1.22x instead of 1.16x on the
     * toy model on one thread). */
    me_bench_sgemm_gflops(512, 1);
    /* reset the peak (VmHWM) so that earlier work, such as the sgemm reference, does not count */
    FILE *clear = fopen("/proc/self/clear_refs", "w");
    if (clear) {
        fputs("5", clear);
        fclose(clear);
    }
    r->rss_before = rss_now();
    me_params p;
    me_params_init(&p);
    me_encoder e;
    me_optim opt;
    memset(&opt, 0, sizeof opt);
    me_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.optimizer = ME_OPT_ADAMW;
    tc.beta1 = 0.9, tc.beta2 = 0.999, tc.eps = 1e-8, tc.weight_decay = 0.01, tc.lr = 1e-4;
    tc.decay_norm_and_bias = 1; /* torch.optim.AdamW over model.parameters() decays everything */
    size_t row = (size_t)o->seq * c.d_model, n = (size_t)o->batch * row, mine = (size_t)b * row;
    float *x = NULL, *target = NULL, *dy = NULL;
    double *times = NULL, *reduce = NULL, *scratch = NULL, *prof = NULL;
    sgemm_ref ref = {0};
    shards sh = {0};
    me_status st;
    me_rng rng;
    me_rng_seed(&rng, 1234);
    if (!(st = me_encoder_register(&e, &p, "", &c, err)) && !(st = me_params_alloc(&p, err))) {
        me_encoder_init_weights(&e, &p, &rng);
        /* with thread shards the main encoder only holds the registry: the shards have the activations */
        if (!(st = o->thread_shards > 1 ? ME_OK : me_encoder_alloc(&e, cap, o->seq, err)) &&
            !(st = me_optim_init(&opt, &p, &tc, err))) {
            x = me_alloc(n * sizeof *x);
            target = me_alloc(n * sizeof *target);
            dy = me_alloc((mine ? mine : 1) * sizeof *dy);
            times = calloc((size_t)o->steps + 1, sizeof *times);
            reduce = calloc((size_t)o->steps + 1, sizeof *reduce);
            scratch = calloc((size_t)o->steps + 1, sizeof *scratch);
            if (o->profile) prof = calloc((size_t)o->steps * N_COLS, sizeof *prof);
            if (!x || !target || !dy || !times || !reduce || !scratch || (o->profile && !prof))
                st = me_error_set(err, ME_ERR_NOMEM, "out of memory for benchmark inputs");
        }
    }
    size_t shard_act = 0, shard_work = 0;
    if (!st && o->thread_shards > 1) {
        if (d) st = me_error_set(err, ME_ERR_CONFIG, "bench: thread shards are not measured under mpirun, expected "
                                                     "train.thread_shards = 1");
        else
            st = shards_make(&sh, o->thread_shards, &c, p.data, b, o->seq, &shard_act, &shard_work, err);
    }
    /* every rank is ready, or none starts the collective steps */
    if ((st = me_dist_agree(d, st, NULL, err))) goto done;
    /* the whole batch's data on every rank (the same draws), each using its shard */
    for (size_t i = 0; i < n; i++) x[i] = me_rng_normal(&rng), target[i] = me_rng_normal(&rng);
    const float *xs = x + lo * row, *ts = target + lo * row;
    r->param_bytes = r->grad_bytes = p.total * sizeof(float);
    r->optim_bytes = 2 * p.total * sizeof(float);
    me_encoder_activation_bytes(&c, cap, o->seq, &r->activation_bytes, &r->workspace_bytes);
    if (sh.n) { /* each shard's gradient block and activations */
        r->grad_bytes += (size_t)sh.n * p.total * sizeof(float);
        r->activation_bytes = shard_act;
        r->workspace_bytes = shard_work;
    }
    r->io_bytes = 3 * mine * sizeof(float);
    r->needed_bytes = r->param_bytes + r->grad_bytes + r->optim_bytes + r->activation_bytes + r->io_bytes;
    double region_s = o->profile ? me_prof_region_cost(2000) : 0.0;
    r->region_us = region_s * 1e6;
    if (d) {
        e.ready = me_dist_grads_ready;
        e.ready_ctx = d;
    }
    /* the sgemm reference in rounds between blocks of timed steps (see me_bench_options) */
    int rounds = d || o->sgemm_rounds <= 0 ? 0 : o->sgemm_rounds < o->steps ? o->sgemm_rounds : o->steps, round = 0;
    double round_gflops[ME_BENCH_ROUNDS_MAX], round_ratio[ME_BENCH_ROUNDS_MAX];
    if (rounds > ME_BENCH_ROUNDS_MAX) rounds = ME_BENCH_ROUNDS_MAX;
    int block_start = 0;
    double first = 0, last = 0;
    me_prof_enable(o->profile);
    for (int it = -o->warmup; it < o->steps; it++) {
        double t0 = me_now_s(), tr = 0.0;
        /* one training step: forward, MSE loss, backward, gradient sum, AdamW */
        double loss = 0;
        float scale = 2.0f / (float)n; /* the whole batch's mean */
        if (sh.n) {
            shard_ctx sc = {&sh, xs, ts, dy, b, o->seq, row, scale};
            loss = me_shards_step(&p, sh.grads, sh.n, shard_pass, &sc, sh.loss);
            me_prof_phase(ME_PROF_BACKWARD);
        } else {
            if (b > 0) loss = forward_loss(&e, &p, xs, ts, dy, b, o->seq, row, scale);
            me_prof_phase(ME_PROF_BACKWARD);
            me_params_zero_grad(&p);
            if (d && (st = d->ops->grad_begin(d->impl, p.grad, p.total, err))) goto done;
            if (b > 0) me_encoder_backward(&e, &p, NULL, dy);
        }
        if (d) {
            tr = me_now_s();
            if ((st = d->ops->grad_finish(d->impl, err))) goto done;
            tr = me_now_s() - tr;
        }
        ME_PROF(ME_PROF_OPTIMIZER, me_optim_step(&opt, &p, tc.lr));
        double t1 = me_now_s();
        me_prof_totals tot;
        me_prof_take(&tot);
        if (it >= 0 && prof) profile_step(prof + (size_t)it * N_COLS, &tot, region_s, t1 - t0);
        if (it >= 0) {
            times[it] = (t1 - t0) * 1000.0;
            reduce[it] = tr * 1000.0;
            if (it == 0) first = loss;
            last = loss;
        }
        if (rounds && it == (long)(round + 1) * o->steps / rounds - 1) { /* the end of a block */
            if (round == 0) { /* the step's peak, before the reference's matrices exist */
                r->rss_peak = rss_peak();
                if (!sgemm_ref_init(&ref, ME_BENCH_SGEMM_N)) {
                    st = me_error_set(err, ME_ERR_NOMEM, "out of memory for the sgemm reference");
                    goto done;
                }
            }
            int nb = it + 1 - block_start;
            memcpy(scratch, times + block_start, (size_t)nb * sizeof *scratch); /* me_median sorts */
            double step_gflops = me_bench_step_flops(&c, o->batch, o->seq) / 1e9 / (me_median(scratch, (size_t)nb) / 1000.0);
            round_gflops[round] = sgemm_ref_time(&ref, 1);
            round_ratio[round] = round_gflops[round] > 0 ? step_gflops / round_gflops[round] : 0.0;
            round++;
            block_start = it + 1;
        }
    }
    me_prof_enable(0);
    if (rounds) {
        r->sgemm_rounds = rounds;
        r->sgemm_gflops = me_median(round_gflops, (size_t)rounds);
        r->sgemm_ratio = me_median(round_ratio, (size_t)rounds);
    }
    double parts[2] = {first, last}, sums[2];
    if ((st = me_dist_sum(d, parts, 2, sums, err))) goto done;
    r->loss_first = sums[0] / (double)n;
    r->loss_last = sums[1] / (double)n;
    if (!rounds) r->rss_peak = rss_peak();
    r->ms_median = me_median(times, (size_t)o->steps); /* sorts */
    r->ms_min = times[0];
    r->ms_max = times[o->steps - 1];
    r->ms_reduce = me_median(reduce, (size_t)o->steps);
    if (prof) profile_rows(r, prof, o->steps);
    r->tokens_per_s = (double)o->batch * o->seq / (r->ms_median / 1000.0);
    r->gflop_per_step = me_bench_step_flops(&c, o->batch, o->seq) / 1e9;
    r->gflops = r->gflop_per_step / (r->ms_median / 1000.0);
done:
    me_prof_enable(0);
    sgemm_ref_free(&ref);
    shards_free(&sh);
    me_free(x), me_free(target), me_free(dy);
    free(times), free(reduce), free(scratch);
    free(prof);
    me_optim_free(&opt);
    me_encoder_free(&e);
    me_params_free(&p);
    return st;
}

