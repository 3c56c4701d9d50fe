#include "minienc/bench.h"

#include <cblas.h>
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

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double me_bench_step_flops(const me_model_config *c, int batch, int seq) {
    double t = (double)batch * seq, d = c->d_model, f = c->d_ff;
    double fwd = 8.0 * t * d * d + 4.0 * batch * (double)seq * seq * d + 4.0 * t * d * f;
    /* post-LN: nothing needs dL/dx of the stack's input, so the first in_proj's input gradient
     * (2 T 3D D) is not computed (PyTorch's autograd skips it too); pre-LN needs it for norm1's gradients */
    double skipped = c->norm_first ? 0.0 : 6.0 * t * d * d;
    return 3.0 * c->n_layers * fwd - skipped;
}

me_status me_bench_run(const me_model_config *cfg, const me_bench_options *o, me_bench_result *r, me_error *err) {
    memset(r, 0, sizeof *r);
    me_model_config c = *cfg;
    c.dropout = 0.0f;
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
    size_t n = (size_t)o->batch * o->seq * c.d_model;
    float *x = NULL, *target = NULL, *dy = NULL;
    double *times = NULL;
    me_status st;
    if ((st = me_encoder_register(&e, &p, "", &c, err)) || (st = me_params_alloc(&p, err))) goto done;
    me_rng rng;
    me_rng_seed(&rng, 1234);
    me_encoder_init_weights(&e, &p, &rng);
    if ((st = me_encoder_alloc(&e, o->batch, o->seq, err)) || (st = me_optim_init(&opt, &p, &tc, err))) goto done;
    x = me_alloc(n * sizeof *x);
    target = me_alloc(n * sizeof *target);
    dy = me_alloc(n * sizeof *dy);
    times = calloc((size_t)o->steps + 1, sizeof *times);
    if (!x || !target || !dy || !times) {
        st = me_error_set(err, ME_ERR_NOMEM, "out of memory for benchmark inputs");
        goto done;
    }
    for (size_t i = 0; i < n; i++) x[i] = me_rng_normal(&rng), target[i] = me_rng_normal(&rng);
    r->param_bytes = r->grad_bytes = p.total * sizeof(float);
    r->optim_bytes = 2 * p.total * sizeof(float);
    me_encoder_activation_bytes(&c, o->batch, o->seq, &r->activation_bytes, &r->workspace_bytes);
    r->io_bytes = 3 * n * sizeof(float);
    r->needed_bytes = r->param_bytes + r->grad_bytes + r->optim_bytes + r->activation_bytes + r->io_bytes;
    for (int it = -o->warmup; it < o->steps; it++) {
        double t0 = me_now_s();
        /* one training step: forward, MSE loss, backward, AdamW */
        const float *y = me_encoder_forward(&e, &p, x, NULL, o->batch, o->seq, 1, &rng);
        double loss = 0;
        float scale = 2.0f / (float)n;
        for (size_t i = 0; i < n; i++) {
            float diff = y[i] - target[i];
            loss += (double)diff * diff;
            dy[i] = scale * diff; /* d/dy mean((y - t)^2) */
        }
        me_params_zero_grad(&p);
        me_encoder_backward(&e, &p, NULL, dy);
        me_optim_step(&opt, &p, tc.lr);
        double t1 = me_now_s();
        if (it >= 0) {
            times[it] = (t1 - t0) * 1000.0;
            if (it == 0) r->loss_first = loss / (double)n;
            r->loss_last = loss / (double)n;
        }
    }
    r->rss_peak = rss_peak();
    qsort(times, (size_t)o->steps, sizeof *times, cmp_double);
    r->ms_min = times[0];
    r->ms_max = times[o->steps - 1];
    r->ms_median = o->steps % 2 ? times[o->steps / 2] : 0.5 * (times[o->steps / 2 - 1] + times[o->steps / 2]);
    r->tokens_per_s = (double)o->batch * o->seq / (r->ms_median / 1000.0);
    r->gflop_per_step = me_bench_step_flops(&c, o->batch, o->seq) / 1e9;
    r->gflops = r->gflop_per_step / (r->ms_median / 1000.0);
done:
    me_free(x), me_free(target), me_free(dy);
    free(times);
    me_optim_free(&opt);
    me_encoder_free(&e);
    me_params_free(&p);
    return st;
}

double me_bench_sgemm_gflops(int n, int reps) {
    /* the machine's reference: plain cblas_sgemm with OpenBLAS's own threads (as many as ours) */
    int threads = me_ops_threads();
    openblas_set_num_threads(threads);
    size_t nn = (size_t)n * n;
    float *a = me_alloc(nn * sizeof(float)), *b = me_alloc(nn * sizeof(float)), *c = me_alloc(nn * sizeof(float));
    double *t = calloc((size_t)reps, sizeof *t);
    if (!a || !b || !c || !t) {
        me_free(a), me_free(b), me_free(c), free(t);
        return 0.0;
    }
    me_rng rng;
    me_rng_seed(&rng, 7);
    for (size_t i = 0; i < nn; i++) a[i] = me_rng_uniform(&rng), b[i] = me_rng_uniform(&rng);
    /* c[n,n] = a[n,n] * b[n,n], once to warm up, then timed */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int r = 0; r < reps; r++) {
        double t0 = me_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t[r] = me_now_s() - t0;
    }
    openblas_set_num_threads(1);
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double med = t[reps / 2];
    me_free(a), me_free(b), me_free(c), free(t);
    return 2.0 * (double)n * n * n / med / 1e9;
}
