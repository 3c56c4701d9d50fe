#include "minienc/ops.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "internal.h"
#include "profile.h"
#include "small_matmul.h"
#include "vec.h"

/* Threading: minienc runs its own threads (OpenMP) and keeps OpenBLAS single-threaded, so that the
 * elementwise kernels, the per-head attention products and the large matmuls share the same cores
 * without oversubscription. A large matmul is split into one block of rows (or columns) per thread.
 * Below ME_PAR_MIN_FLOPS a second thread costs more than it saves (measured on the seed block's
 * attention products, 64 x 64 x 64: splitting them was slower than running heads in parallel).
 * OpenBLAS may round a block of rows differently from the same rows inside a larger product, so a
 * split matmul can differ in the last bits from the single-threaded one: results are reproducible
 * for a given thread count, not across thread counts (checkpoints record the count). */
#define ME_PAR_MIN_FLOPS (4.0 * 1024 * 1024)
/* Elementwise loops over fewer values than this stay on one thread. */
#define ME_PAR_MIN_ELEMS 32768

/* The elementwise loops' bodies, each compiled per CPU kind (ME_TARGET_CLONES) and called by every
 * thread on its part: their loops then vectorise to the widest registers the CPU has, with the same
 * value in every lane as one at a time. */
ME_TARGET_CLONES static void colsum_part(float *out, const float *x, int t, int c, int c0, int c1) {
    for (int i = 0; i < t; i++) {
        const float *row = x + (size_t)i * c;
        for (int j = c0; j < c1; j++) out[j] += row[j];
    }
}

ME_TARGET_CLONES static void relu_part(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

ME_TARGET_CLONES static void relu_backward_part(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
}

ME_TARGET_CLONES static void relu_grad_part(float *d, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) d[i] = inp[i] > 0.0f ? d[i] : 0.0f; /* a select, not a branch: vectorises */
}

ME_TARGET_CLONES static void add_part(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void me_ops_set_threads(int n) {
    omp_set_num_threads(n > 0 ? n : 1);
    omp_set_max_active_levels(1); /* a kernel called inside a parallel region (a thread shard) runs alone */
    openblas_set_num_threads(1);
}

int me_ops_threads(void) { return omp_get_max_threads(); }

/* One thread's product C[M,N] = alpha op(A) op(B) + beta C, or with a bias (then beta is 0: a linear
 * layer's output) C = alpha op(A) op(B) + bias[N] on every row: the register-tiled kernel where it
 * fits (small_matmul.h), which adds the bias as it stores C; else OpenBLAS's, after the bias rows are
 * written into C for sgemm to add to */
static void matmul1(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                    const float *b, int ldb, float beta, const float *bias, float *c, int ldc) {
    assert(!bias || beta == 0.0f);
    if (me_small_matmul_fits(m, k)) {
        me_small_matmul(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, bias, c, ldc);
        return;
    }
    if (bias) {
        for (int i = 0; i < m; i++) memcpy(c + (size_t)i * ldc, bias, (size_t)n * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a, lda, b, ldb, beta, c, ldc);
}

/* me_matmul, or with a bias row added to every row of C and beta 0 (see matmul1) */
static void matmul_bias(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                        const float *b, int ldb, float beta, const float *bias, float *c, int ldc) {
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt <= 1 || 2.0 * m * n * k < ME_PAR_MIN_FLOPS) {
        matmul1(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, bias, c, ldc);
        return;
    }
    int split_rows = m >= n, len = split_rows ? m : n;
    ME_PAR(1);
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), parts = omp_get_num_threads();
        int chunk = ((len + parts - 1) / parts + 15) & ~15; /* multiples of 16 keep the kernels' tiles whole */
        int lo = t * chunk, hi = lo + chunk < len ? lo + chunk : len;
        if (lo < hi) {
            if (split_rows) /* rows lo..hi of op(A) and C */
                matmul1(trans_a, trans_b, hi - lo, n, k, alpha, trans_a ? a + lo : a + (size_t)lo * lda, lda, b, ldb,
                        beta, bias, c + (size_t)lo * ldc, ldc);
            else /* columns lo..hi of op(B), of the bias and of C */
                matmul1(trans_a, trans_b, m, hi - lo, k, alpha, a, lda, trans_b ? b + (size_t)lo * ldb : b + lo, ldb,
                        beta, bias ? bias + lo : NULL, c + lo, ldc);
        }
    }
}

void me_matmul(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *c, int ldc) {
    matmul_bias(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, NULL, c, ldc);
}

/* Column sums: out[C] += sum_t x[T,C]; threads take column ranges so no reduction is needed. */
static void colsum_add(float *out, const float *x, int t, int c) {
#pragma omp parallel if (ME_PAR((size_t)t * c >= ME_PAR_MIN_ELEMS))
    {
        size_t c0, c1;
        me_thread_range((size_t)c, &c0, &c1);
        colsum_part(out, x, t, c, (int)c0, (int)c1);
    }
}

void me_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int t, int c,
                       int oc) {
    /* out[T,OC] = inp[T,C] * trans(weight[OC,C]) (+ bias rows: added as the small-product kernel stores C,
     * written into C before an sgemm; a pass of their own over C cost the toy model about 1 MiB of
     * copies a thread shard and a step) */
    matmul_bias(0, 1, t, oc, c, 1.0f, inp, c, weight, c, 0.0f, bias, out, oc);
}

void me_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, int t, int c, int oc) {
    /* dinp[T,C] += dout[T,OC] * weight[OC,C] */
    if (dinp) me_matmul(0, 0, t, c, oc, 1.0f, dout, oc, weight, c, 1.0f, dinp, c);
    /* dweight[OC,C] += trans(dout[T,OC]) * inp[T,C] */
    me_matmul(1, 0, oc, c, t, 1.0f, dout, oc, inp, c, 1.0f, dweight, c);
    if (dbias) colsum_add(dbias, dout, t, oc);
}

/* Row sums and dot products in a fixed order that vectorises without reassociation flags: element j
 * goes to partial sum j % ME_LANES, and the partial sums are combined pairwise at the end. */
#define ME_LANES ME_VW
_Static_assert(ME_LANES == 8, "lanes_total adds 8 partial sums");
static inline float lanes_total(const float *acc) {
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* sum_j x[j] y[j] over n values, in lanes (inlined into each caller's per-CPU clone) */
static inline __attribute__((always_inline)) float lanes_dot(const float *x, const float *y, int n) {
    float acc[ME_LANES] = {0};
    int n8 = n - n % ME_LANES, j;
    for (j = 0; j < n8; j += ME_LANES)
        for (int k = 0; k < ME_LANES; k++) acc[k] += x[j + k] * y[j + k];
    for (; j < n; j++) acc[j - n8] += x[j] * y[j];
    return lanes_total(acc);
}

/* LayerNorm of one row of c values: v[c] is the row, or with skip, v = res = x + skip (res may be x).
 * Two passes in float lanes (the mean, then the centred variance: no cancellation), then the output. */
static inline __attribute__((always_inline)) void layernorm_row(float *y, float *mean, float *rstd, float *res,
                                                                const float *x, const float *skip, const float *weight,
                                                                const float *bias, int c, float eps) {
    float acc[ME_LANES] = {0};
    int c8 = c - c % ME_LANES, j;
    const float *v = x;
    if (skip) {
        for (j = 0; j < c8; j += ME_LANES)
            for (int k = 0; k < ME_LANES; k++) {
                float s = x[j + k] + skip[j + k];
                res[j + k] = s;
                acc[k] += s;
            }
        for (; j < c; j++) {
            res[j] = x[j] + skip[j];
            acc[j - c8] += res[j];
        }
        v = res;
    } else {
        for (j = 0; j < c8; j += ME_LANES)
            for (int k = 0; k < ME_LANES; k++) acc[k] += v[j + k];
        for (; j < c; j++) acc[j - c8] += v[j];
    }
    float mu = lanes_total(acc) / (float)c;
    for (int k = 0; k < ME_LANES; k++) acc[k] = 0.0f;
    for (j = 0; j < c8; j += ME_LANES)
        for (int k = 0; k < ME_LANES; k++) {
            float d = v[j + k] - mu;
            acc[k] += d * d;
        }
    for (; j < c; j++) acc[j - c8] += (v[j] - mu) * (v[j] - mu);
    float r = 1.0f / sqrtf(lanes_total(acc) / (float)c + eps);
    for (j = 0; j < c; j++) y[j] = (v[j] - mu) * r * weight[j] + bias[j];
    *mean = mu;
    *rstd = r;
}

/* Rows [lo, hi) of a LayerNorm forward, with skip (not NULL) the residual sum res = x + skip written
 * first (res may be x) and normalised. Compiled per CPU kind, a thread's rows in one call: with a call
 * per row, 512 rows of 64 values (a toy model's) took 37 us, in one call 27-28 (one thread, cached,
 * minimum of 7). */
ME_TARGET_CLONES static void layernorm_rows(float *out, float *mean, float *rstd, float *res, const float *x,
                                            const float *skip, const float *weight, const float *bias, size_t lo,
                                            size_t hi, int c, float eps) {
    for (size_t i = lo; i < hi; i++) {
        size_t o = i * (size_t)c;
        if (skip)
            layernorm_row(out + o, mean + i, rstd + i, res + o, x + o, skip + o, weight, bias, c, eps);
        else
            layernorm_row(out + o, mean + i, rstd + i, NULL, x + o, NULL, weight, bias, c, eps);
    }
}

void me_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                          const float *bias, int t, int c, float eps) {
#pragma omp parallel if (ME_PAR((size_t)t * c >= ME_PAR_MIN_ELEMS))
    {
        size_t lo, hi;
        me_thread_range((size_t)t, &lo, &hi);
        layernorm_rows(out, mean, rstd, NULL, inp, NULL, weight, bias, lo, hi, c, eps);
    }
}

void me_add_layernorm_forward(float *out, float *mean, float *rstd, float *res, const float *skip,
                              const float *weight, const float *bias, int t, int c, float eps) {
#pragma omp parallel if (ME_PAR((size_t)t * c >= ME_PAR_MIN_ELEMS))
    {
        size_t lo, hi;
        me_thread_range((size_t)t, &lo, &hi);
        layernorm_rows(out, mean, rstd, res, res, skip, weight, bias, lo, hi, c, eps);
    }
}

/* dweight[c0..c1), dbias[c0..c1) += sums over the t rows (a thread's columns; see layernorm_backward) */
ME_TARGET_CLONES static void layernorm_param_grads(float *dweight, float *dbias, const float *dout, const float *inp,
                                                   const float *mean, const float *rstd, int t, int c, int c0, int c1) {
    for (int i = 0; i < t; i++) {
        const float *x = inp + (size_t)i * c, *dy = dout + (size_t)i * c;
        float m = mean[i], r = rstd[i];
        for (int j = c0; j < c1; j++) {
            dweight[j] += dy[j] * ((x[j] - m) * r);
            dbias[j] += dy[j];
        }
    }
}

/* One row's input gradient dx[c] (added to or set, then copied to dcopy when not NULL) */
static inline __attribute__((always_inline)) void layernorm_backward_row(float *dx, float *dcopy, int accumulate,
                                                                         const float *dy, const float *x,
                                                                         const float *weight, float m, float r, int c) {
    /* xhat = (x - mean) * rstd;  dxhat = dy * weight;
     * dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) */
    int c8 = c - c % ME_LANES, j;
    float s2[ME_LANES] = {0};
    /* one sum per loop: the compiler keeps a single set of lanes in registers */
    float a = lanes_dot(dy, weight, c) / (float)c;
    for (j = 0; j < c8; j += ME_LANES)
        for (int k = 0; k < ME_LANES; k++) s2[k] += dy[j + k] * weight[j + k] * ((x[j + k] - m) * r);
    for (; j < c; j++) s2[j - c8] += dy[j] * weight[j] * ((x[j] - m) * r);
    float b = lanes_total(s2) / (float)c;
    if (accumulate) {
        for (j = 0; j < c; j++) dx[j] += r * (dy[j] * weight[j] - a - ((x[j] - m) * r) * b);
    } else {
        for (j = 0; j < c; j++) dx[j] = r * (dy[j] * weight[j] - a - ((x[j] - m) * r) * b);
        if (dcopy) memcpy(dcopy, dx, (size_t)c * sizeof(float));
    }
}

/* Rows [lo, hi) of the input gradient (see layernorm_backward_row), a thread's rows in one call (as
 * layernorm_rows) */
ME_TARGET_CLONES static void layernorm_backward_rows(float *dinp, float *dcopy, int accumulate, const float *dout,
                                                     const float *inp, const float *weight, const float *mean,
                                                     const float *rstd, size_t lo, size_t hi, int c) {
    for (size_t i = lo; i < hi; i++) {
        size_t o = i * (size_t)c;
        layernorm_backward_row(dinp + o, dcopy ? dcopy + o : NULL, accumulate, dout + o, inp + o, weight, mean[i],
                               rstd[i], c);
    }
}

/* LayerNorm's gradients: dweight, dbias added to; dinp added to (accumulate) or overwritten, and then
 * copied to dcopy when not NULL. */
static void layernorm_backward(float *dinp, float *dcopy, int accumulate, float *dweight, float *dbias,
                               const float *dout, const float *inp, const float *weight, const float *mean,
                               const float *rstd, int t, int c) {
    /* dweight, dbias: threads take column ranges (sums over rows, no reduction between threads) */
#pragma omp parallel if (ME_PAR((size_t)t * c >= ME_PAR_MIN_ELEMS))
    {
        size_t c0, c1;
        me_thread_range((size_t)c, &c0, &c1);
        layernorm_param_grads(dweight, dbias, dout, inp, mean, rstd, t, c, (int)c0, (int)c1);
    }
#pragma omp parallel if (ME_PAR((size_t)t * c >= ME_PAR_MIN_ELEMS))
    {
        size_t lo, hi;
        me_thread_range((size_t)t, &lo, &hi);
        layernorm_backward_rows(dinp, dcopy, accumulate, dout, inp, weight, mean, rstd, lo, hi, c);
    }
}

void me_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, const float *mean, const float *rstd, int t, int c) {
    layernorm_backward(dinp, NULL, 1, dweight, dbias, dout, inp, weight, mean, rstd, t, c);
}

void me_layernorm_backward_set(float *dinp, float *dcopy, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const float *mean, const float *rstd, int t,
                               int c) {
    layernorm_backward(dinp, dcopy, 0, dweight, dbias, dout, inp, weight, mean, rstd, t, c);
}

void me_relu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel if (ME_PAR(n >= ME_PAR_MIN_ELEMS))
    {
        size_t lo, hi;
        me_thread_range(n, &lo, &hi);
        relu_part(out + lo, inp + lo, hi - lo);
    }
}

void me_relu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
#pragma omp parallel if (ME_PAR(n >= ME_PAR_MIN_ELEMS))
    {
        size_t lo, hi;
        me_thread_range(n, &lo, &hi);
        relu_backward_part(dinp + lo, dout + lo, inp + lo, hi - lo);
    }
}

#define ME_SQRT1_2 0.70710678118654752440f
#define ME_INV_SQRT_2PI 0.39894228040143267794f

void me_gelu_forward(float *out, const float *inp, size_t n) {
    /* gelu(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2))) */
#pragma omp parallel for schedule(static) if (ME_PAR(n >= ME_PAR_MIN_ELEMS))
    for (size_t i = 0; i < n; i++) out[i] = 0.5f * inp[i] * (1.0f + erff(inp[i] * ME_SQRT1_2));
}

void me_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    /* gelu'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi) */
#pragma omp parallel for schedule(static) if (ME_PAR(n >= ME_PAR_MIN_ELEMS))
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * ME_SQRT1_2));
        float pdf = ME_INV_SQRT_2PI * expf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

void me_relu_grad_inplace(float *d, const float *inp, size_t n) {
#pragma omp parallel if (ME_PAR(n >= ME_PAR_MIN_ELEMS))
    {
        size_t lo, hi;
        me_thread_range(n, &lo, &hi);
        relu_grad_part(d + lo, inp + lo, hi - lo);
    }
}

void me_gelu_grad_inplace(float *d, const float *inp, size_t n) {
#pragma omp parallel for schedule(static) if (ME_PAR(n >= ME_PAR_MIN_ELEMS))
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        d[i] *= 0.5f * (1.0f + erff(x * ME_SQRT1_2)) + x * ME_INV_SQRT_2PI * expf(-0.5f * x * x);
    }
}

void me_add_inplace(float *y, const float *x, size_t n) {
#pragma omp parallel if (ME_PAR(n >= ME_PAR_MIN_ELEMS))
    {
        size_t lo, hi;
        me_thread_range(n, &lo, &hi);
        add_part(y + lo, x + lo, hi - lo);
    }
}

uint64_t me_dropout_row(const me_dropout_key *k, uint64_t example, int layer, me_drop_site site, uint64_t a,
                        uint64_t row) {
    /* one coordinate at a time: since the finaliser is a bijection, two rows that differ in one
     * coordinate (and share the earlier ones) get different states */
    uint64_t h = me_rng_mix64(k->key[0] + ME_RNG_GAMMA);
    h = me_rng_mix64(h ^ k->key[1] ^ k->step);
    h = me_rng_mix64(h ^ k->key[2] ^ example);
    h = me_rng_mix64(h ^ k->key[3] ^ (((uint64_t)(unsigned)layer << 8) | (uint64_t)site));
    h = me_rng_mix64(h ^ a);
    return me_rng_mix64(h ^ row);
}

void me_dropout_forward(float *x, uint8_t *mask, int b, int s, int c, float p, const me_dropout_key *k, int layer,
                        me_drop_site site) {
    float scale = 1.0f / (1.0f - p);
    int rows = b * s;
    /* every element's mask is a function of its coordinates alone, so rows can go to any thread */
#pragma omp parallel for schedule(static) if (ME_PAR((size_t)rows * c >= ME_PAR_MIN_ELEMS))
    for (int r = 0; r < rows; r++) {
        uint64_t st = me_dropout_row(k, k->example0 + (uint64_t)(r / s), layer, site, 0, (uint64_t)(r % s));
        float *xr = x + (size_t)r * c;
        uint8_t *mr = mask + (size_t)r * c;
        for (int j = 0; j < c; j++) {
            uint8_t keep = me_dropout_uniform(st, (uint64_t)j) >= p;
            mr[j] = keep;
            xr[j] = keep ? xr[j] * scale : 0.0f;
        }
    }
}

void me_dropout_backward(float *dx, const float *dy, const uint8_t *mask, size_t n, float p) {
    float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) dx[i] = mask[i] ? dy[i] * scale : 0.0f;
}

/* e^x for softmax's shifted scores, lane by lane (x <= 0; larger x is taken as 0, x below -87 as -87,
 * whose e^x ~1.6e-38 is nothing beside the row's largest weight, 1): x = n ln2 + r with |r| <= ln2/2
 * (ln2 in two parts, Cody and Waite), e^r by its degree-6 Taylor polynomial (truncation below 2^-24
 * there), 2^n written into the exponent bits. Within 2 ulp of expf. A macro (see vec.h). */
#define EXP_NONPOSITIVE(out, x_)                                                                                   \
    do {                                                                                                           \
        me_vec ex_ = (x_), ez_ = {0}, elo_ = ez_ - 87.0f;                                                          \
        ex_ = ME_SELECT(ex_ > ez_, ez_, ex_);                                                                      \
        ex_ = ME_SELECT(ex_ < elo_, elo_, ex_);                                                                    \
        me_vec en_ = (ex_ * 1.44269504f + 12582912.0f) - 12582912.0f; /* round(x / ln2): 1.5 * 2^23 */             \
        me_vec er_ = (ex_ - en_ * 0.693359375f) - en_ * -2.12194440e-4f;                                           \
        me_vec ep_ = ez_ + 1.0f / 720.0f;                                                                          \
        ep_ = ep_ * er_ + 1.0f / 120.0f;                                                                           \
        ep_ = ep_ * er_ + 1.0f / 24.0f;                                                                            \
        ep_ = ep_ * er_ + 1.0f / 6.0f;                                                                             \
        ep_ = ep_ * er_ + 0.5f;                                                                                    \
        ep_ = ep_ * er_ + 1.0f;                                                                                    \
        ep_ = ep_ * er_ + 1.0f;                                                                                    \
        me_ivec ebits_ = (__builtin_convertvector(en_, me_ivec) + 127) * (1 << 23); /* 2^n, n in [-126, 0] */      \
        (out) = ep_ * (me_vec)ebits_;                                                                              \
    } while (0)

/* Columns j0 .. j0 + ME_VW of a row of scores: x the scores, ok -1 for the keys that count (not padding).
 * The lane masks come from vector operations: lanes written one at a time and then read as a vector
 * stall the read (store forwarding fails), which cost more than the softmax's arithmetic. */
static inline __attribute__((always_inline)) void score_lanes(me_vec *x, me_ivec *ok, const float *row,
                                                              const uint8_t *key_pad, int j0) {
    const me_ivec shift = {0, 8, 16, 24, 0, 8, 16, 24};
    ME_LOAD(*x, row + j0);
    me_ivec pad = {0};
    if (key_pad) {
        uint32_t w0, w1; /* lane k's padding byte: the (k % 4)-th lowest byte of w0 (k < 4) or of w1 */
        memcpy(&w0, key_pad + j0, 4);
        memcpy(&w1, key_pad + j0 + 4, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w0 = __builtin_bswap32(w0), w1 = __builtin_bswap32(w1);
#endif
        if (w0 | w1) {
            me_ivec w = {(int32_t)w0, (int32_t)w0, (int32_t)w0, (int32_t)w0,
                         (int32_t)w1, (int32_t)w1, (int32_t)w1, (int32_t)w1};
            pad = (w >> shift) & 0xff; /* sign bits shifted in are masked off */
        }
    }
    *ok = pad == 0;
}

/* Softmax of one row of s scores in place, with padding keys excluded, ME_VW lanes at a time: the
 * whole vectors of the row, then (when s is not a multiple of ME_VW) the window of its last ME_VW
 * columns, whose lanes before the whole vectors' end are left out of the sum. The sum is kept in lanes,
 * combined pairwise. Nothing is read back after a store that it overlaps only partly (the window is
 * stored last), for the reason above. A row whose keys are all padding is all zeros. */
static inline __attribute__((always_inline)) void softmax_row(float *row, const uint8_t *key_pad, int s) {
    const me_ivec lane = {0, 1, 2, 3, 4, 5, 6, 7};
    float sb[ME_VW] = {0};
    uint8_t pb[ME_VW];
    float *r = row;
    const uint8_t *kp = key_pad;
    int n = s;
    if (s < ME_VW) { /* shorter than a vector: through a copy, its extra lanes keys that do not count */
        memcpy(sb, row, (size_t)s * sizeof(float));
        for (int k = 0; k < ME_VW; k++) pb[k] = k >= s || (key_pad && key_pad[k]);
        r = sb, kp = pb, n = ME_VW;
    }
    int whole = n - n % ME_VW, w0 = n - ME_VW; /* vectors at 0 .. whole; the window at w0 .. n */
    me_vec x, xw = {0}, mxv = {0}, acc = {0}, zero = {0};
    me_ivec ok, okw = {0};
    mxv = mxv - INFINITY;
    for (int j = 0; j < whole; j += ME_VW) {
        score_lanes(&x, &ok, r, kp, j);
        mxv = ME_SELECT(ok & (x > mxv), x, mxv);
    }
    if (whole < n) {
        score_lanes(&xw, &okw, r, kp, w0);
        mxv = ME_SELECT(okw & (xw > mxv), xw, mxv);
    }
    float mx = -INFINITY;
    for (int k = 0; k < ME_VW; k++) mx = mxv[k] > mx ? mxv[k] : mx;
    if (mx == -INFINITY) {
        memset(row, 0, (size_t)s * sizeof(float));
        return;
    }
    for (int j = 0; j < whole; j += ME_VW) {
        me_vec e;
        score_lanes(&x, &ok, r, kp, j);
        EXP_NONPOSITIVE(e, x - mx);
        e = ME_SELECT(ok, e, zero);
        acc += e;
        memcpy(r + j, &e, sizeof e);
    }
    if (whole < n) {
        EXP_NONPOSITIVE(xw, xw - mx);
        xw = ME_SELECT(okw, xw, zero);
        acc += ME_SELECT(lane >= whole - w0, xw, zero);
    }
    float lanes[ME_VW];
    memcpy(lanes, &acc, sizeof lanes);
    float inv = 1.0f / lanes_total(lanes);
    for (int j = 0; j < whole; j += ME_VW) {
        ME_LOAD(x, r + j);
        x *= inv;
        memcpy(r + j, &x, sizeof x);
    }
    if (whole < n) {
        xw *= inv;
        memcpy(r + w0, &xw, sizeof xw); /* its lanes before whole: the same values as stored there */
    }
    if (r != row) memcpy(row, sb, (size_t)s * sizeof(float));
}

/* Whether the attention loops ask for the next example's rows ahead, a share at each of the current
 * example's heads: when an example's qkv rows [S, 3D] are at most 32 KiB (a toy model's: 12 KiB). Its
 * data had left the core's caches by the time a step reached the attention, and the loads' latency
 * took longer than the arithmetic (per layer, toy shapes, 1 thread, data not cached: forward 164 -> 133
 * us, backward 271 -> 155; cached, as before: 131-135). Larger examples gain nothing, and would crowd
 * the L2 cache. */
#define PREFETCH_AHEAD(s, d) ((size_t)(s) * 3 * (size_t)(d) * sizeof(float) <= 32768)

/* Asks for share i of n of the cache lines of x[0 .. len) ahead of their use (write: to be written) */
static void prefetch_share(const float *x, size_t len, int i, int n, int write) {
    size_t lines = (len * sizeof(float) + 63) / 64, lo = lines * (size_t)i / (size_t)n,
           hi = lines * (size_t)(i + 1) / (size_t)n;
    const char *c = (const char *)x;
    for (size_t l = lo; l < hi; l++)
        if (write)
            __builtin_prefetch(c + l * 64, 1);
        else
            __builtin_prefetch(c + l * 64, 0);
}

/* One (example, head) pair of the forward: p[S,S] = softmax(scale q k^T) (padding keys excluded), pd the
 * weights after dropout, out[S, head cols] = weights x v. base: the example's qkv rows [S, 3D]; pad: its
 * key padding [S] or NULL. Compiled per CPU kind (how the softmax's vectors and the product loops are
 * lowered). */
ME_TARGET_CLONES
static void head_forward(float *out, float *p, float *pd, const float *base, const uint8_t *pad, int s, int d, int dh,
                         int bi, int hi, float dropout, const me_dropout_key *k, int layer) {
    int ld = 3 * d;
    float scale = 1.0f / sqrtf((float)dh);
    /* p[S,S] = scale * q[S,Dh] * trans(k[S,Dh])   (rows strided by 3D inside qkv) */
    me_matmul(0, 1, s, s, dh, scale, base + hi * dh, ld, base + d + hi * dh, ld, 0.0f, p, s);
    for (int i = 0; i < s; i++) softmax_row(p + (size_t)i * s, pad, s);
    const float *pv = p;
    if (dropout > 0.0f) {
        /* the mask of weight (query i, key j) of head hi of example bi: counter-based, so the order of
         * the (batch, head) pairs across threads does not matter */
        float keep_scale = 1.0f / (1.0f - dropout);
        for (int i = 0; i < s; i++) {
            uint64_t st = me_dropout_row(k, k->example0 + (uint64_t)bi, layer, ME_DROP_ATTN, (uint64_t)hi, (uint64_t)i);
            for (int j = 0; j < s; j++)
                pd[(size_t)i * s + j] =
                    me_dropout_uniform(st, (uint64_t)j) >= dropout ? p[(size_t)i * s + j] * keep_scale : 0.0f;
        }
        pv = pd;
    }
    /* out[S, head cols] = pv[S,S] * v[S,Dh]   (written into the head's column slice of out[S,D]),
     * while the weights are still in this core's cache */
    me_matmul(0, 0, s, dh, s, 1.0f, pv, s, base + 2 * d + hi * dh, ld, 0.0f, out + hi * dh, d);
}

void me_attention_forward(float *out, float *probs, float *probs_drop, const float *qkv,
                          const uint8_t *key_pad, int b, int s, int d, int h, float dropout,
                          const me_dropout_key *k, int layer) {
    assert(d % h == 0);
    assert(dropout <= 0.0f || (probs_drop && k));
    int dh = d / h, bh = b * h;
    size_t ss = (size_t)s * s;
    int ahead = PREFETCH_AHEAD(s, d);
    /* heads are independent: one (batch, head) pair per iteration, single-threaded matmuls inside */
#pragma omp parallel for schedule(static) if (ME_PAR((size_t)bh * ss * dh >= ME_PAR_MIN_ELEMS))
    for (int x = 0; x < bh; x++) {
        int bi = x / h, hi = x % h;
        if (ahead && bi + 1 < b) { /* a share of the next example's rows, while this one's heads run */
            prefetch_share(qkv + (size_t)(bi + 1) * s * 3 * d, (size_t)s * 3 * d, hi, h, 0);
            prefetch_share(probs + (size_t)(bi + 1) * h * ss, (size_t)h * ss, hi, h, 1);
            prefetch_share(out + (size_t)(bi + 1) * s * d, (size_t)s * d, hi, h, 1);
        }
        head_forward(out + (size_t)bi * s * d, probs + (size_t)x * ss, dropout > 0.0f ? probs_drop + (size_t)x * ss : NULL,
                     qkv + (size_t)bi * s * 3 * d, key_pad ? key_pad + (size_t)bi * s : NULL, s, d, dh, bi, hi, dropout,
                     k, layer);
    }
}

/* One (example, head) pair of the backward (see me_attention_backward); base/dbase: the example's qkv
 * rows and their gradient [S, 3D], dout: its output gradient rows [S, D]. */
ME_TARGET_CLONES
static void head_backward(float *dbase, float *dp, const float *dout, const float *base, const float *p,
                          const float *pv, int s, int d, int dh, int hi, float dropout) {
    const float *doh = dout + hi * dh; /* the head's columns */
    int ld = 3 * d;
    float scale = 1.0f / sqrtf((float)dh);
    const float *q = base + hi * dh, *k = base + d + hi * dh, *v = base + 2 * d + hi * dh;
    float *dq = dbase + hi * dh, *dk = dbase + d + hi * dh, *dv = dbase + 2 * d + hi * dh;
    size_t ss = (size_t)s * s;
    /* dpv[S,S] = dout_h[S,Dh] * trans(v[S,Dh]) */
    me_matmul(0, 1, s, s, dh, 1.0f, doh, d, v, ld, 0.0f, dp, s);
    /* dv[S,Dh] = trans(pv[S,S]) * dout_h[S,Dh] */
    me_matmul(1, 0, s, dh, s, 1.0f, pv, s, doh, d, 0.0f, dv, ld);
    if (dropout > 0.0f) {
        /* pv = p * keep / (1 - dropout): a kept weight is nonzero exactly where p is (and where p is
         * zero the softmax backward below gives zero anyway) */
        float keep_scale = 1.0f / (1.0f - dropout);
        for (size_t i = 0; i < ss; i++) dp[i] = pv[i] != 0.0f ? dp[i] * keep_scale : 0.0f;
    }
    /* softmax backward, with the 1/sqrt(Dh) of the scores folded in:
     * dscores = scale * p * (dp - sum_j dp_j p_j), the sum in lanes */
    for (int i = 0; i < s; i++) {
        const float *pr = p + (size_t)i * s;
        float *dr = dp + (size_t)i * s;
        float dot = lanes_dot(pr, dr, s);
        for (int j = 0; j < s; j++) dr[j] = scale * pr[j] * (dr[j] - dot);
    }
    /* dq[S,Dh] = dscores[S,S] * k[S,Dh];  dk[S,Dh] = trans(dscores) * q[S,Dh] */
    me_matmul(0, 0, s, dh, s, 1.0f, dp, s, k, ld, 0.0f, dq, ld);
    me_matmul(1, 0, s, dh, s, 1.0f, dp, s, q, ld, 0.0f, dk, ld);
}

void me_attention_backward(float *dqkv, float *dprobs, const float *dout, const float *qkv, const float *probs,
                           const float *probs_drop, int b, int s, int d, int h, float dropout) {
    int dh = d / h, bh = b * h;
    size_t ss = (size_t)s * s, rows = (size_t)s * 3 * d;
    int ahead = PREFETCH_AHEAD(s, d);
#pragma omp parallel for schedule(static) if (ME_PAR((size_t)bh * ss * dh >= ME_PAR_MIN_ELEMS))
    for (int x = 0; x < bh; x++) {
        int bi = x / h, hi = x % h;
        const float *p = probs + (size_t)x * ss;
        if (ahead && bi + 1 < b) { /* a share of the next example's rows, while this one's heads run */
            prefetch_share(qkv + (size_t)(bi + 1) * rows, rows, hi, h, 0);
            prefetch_share(dqkv + (size_t)(bi + 1) * rows, rows, hi, h, 1);
            prefetch_share(probs + (size_t)(bi + 1) * h * ss, (size_t)h * ss, hi, h, 0);
            prefetch_share(dprobs + (size_t)(bi + 1) * h * ss, (size_t)h * ss, hi, h, 1);
            prefetch_share(dout + (size_t)(bi + 1) * s * d, (size_t)s * d, hi, h, 0);
        }
        head_backward(dqkv + (size_t)bi * rows, dprobs + (size_t)x * ss, dout + (size_t)bi * s * d, qkv + (size_t)bi * rows,
                      p, dropout > 0.0f ? probs_drop + (size_t)x * ss : p, s, d, dh, hi, dropout);
    }
}
