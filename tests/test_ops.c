/* Kernels against naive double-precision loops. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "minienc/encoder.h"
#include "minienc/ops.h"
#include "small_matmul.h"

static float *rnd(size_t n, me_rng *r) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    me_fill_uniform(x, n, -1.0f, 1.0f, r);
    return x;
}

/* C = alpha op(A) op(B) + beta C, naive, row-major */
static void naive_matmul(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int p = 0; p < k; p++) {
                double av = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double bv = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                s += av * bv;
            }
            c[(size_t)i * ldc + j] = (float)(alpha * s + beta * c[(size_t)i * ldc + j]);
        }
}

static void matmul_should_match_naive_loops_for_every_transpose(void **state) {
    (void)state;
    me_rng r;
    me_rng_seed(&r, 1);
    int m = 7, n = 5, k = 9;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 3, ldc = n + 1;
            float *a = rnd((size_t)(ta ? k : m) * lda, &r), *b = rnd((size_t)(tb ? n : k) * ldb, &r);
            float *c = rnd((size_t)m * ldc, &r), *want = malloc((size_t)m * ldc * sizeof(float));
            memcpy(want, c, (size_t)m * ldc * sizeof(float));
            me_matmul(ta, tb, m, n, k, 0.7f, a, lda, b, ldb, 0.3f, c, ldc);
            naive_matmul(ta, tb, m, n, k, 0.7f, a, lda, b, ldb, 0.3f, want, ldc);
            assert_tensor_close(c, want, (size_t)m * ldc, 1e-6);
            free(a), free(b), free(c), free(want);
        }
}

/* Products go to the small-product kernel (src/small_matmul.c) when K rows of a tile fit its buffer and
 * op(A) is at most 256 x 256 floats, and to sgemm otherwise (K over 256: a 2-class head over d 512,
 * 8 x 2 x 512; M x K over 65,536): whole tiles of 4 x 16, partial rows and columns, several tiles and
 * several panels of op(B) (K 64: 64 columns a panel; K 200 and 256: 16; also under 4 rows), op(B) read
 * in place (K <= 16, N a multiple of 16, not transposed), every transpose; with beta 0, C must only be
 * written (it starts as NaN), and columns beyond N of each row are left alone. K = 0 leaves beta C. */
static void small_matmul_should_match_naive_loops_at_tile_edges(void **state) {
    (void)state;
    me_rng r;
    me_rng_seed(&r, 13);
    const int sizes[][3] = {{16, 16, 16}, {4, 16, 1}, {3, 7, 5}, {5, 17, 16}, {10, 10, 8}, {33, 32, 20},
                            {64, 64, 64}, {1, 1, 1}, {17, 40, 3}, {8, 48, 64}, {8, 2, 512},
                            {3, 5, 700}, {2, 16, 2048}, {4, 33, 120}, {33, 100, 64}, {20, 50, 200},
                            {9, 40, 256}, {256, 24, 256}, {257, 17, 256}, {6, 70, 257}, {3, 100, 64},
                            {5, 32, 16}, {9, 48, 12}};
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int with_beta = 0; with_beta < 2; with_beta++) {
                    int m = sizes[z][0], n = sizes[z][1], k = sizes[z][2];
                    int lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 2, ldc = n + 3;
                    float *a = rnd((size_t)(ta ? k : m) * lda, &r), *b = rnd((size_t)(tb ? n : k) * ldb, &r);
                    float *c = rnd((size_t)m * ldc, &r), *want = malloc((size_t)m * ldc * sizeof(float));
                    if (!with_beta)
                        for (int i = 0; i < m; i++)
                            for (int j = 0; j < n; j++) c[(size_t)i * ldc + j] = NAN;
                    memcpy(want, c, (size_t)m * ldc * sizeof(float));
                    if (!with_beta)
                        for (int i = 0; i < m; i++)
                            for (int j = 0; j < n; j++) want[(size_t)i * ldc + j] = 0.0f;
                    float beta = with_beta ? 0.5f : 0.0f;
                    me_matmul(ta, tb, m, n, k, 0.7f, a, lda, b, ldb, beta, c, ldc);
                    naive_matmul(ta, tb, m, n, k, 0.7f, a, lda, b, ldb, beta, want, ldc);
                    assert_tensor_close(c, want, (size_t)m * ldc, 1e-5);
                    free(a), free(b), free(c), free(want);
                }
    /* K = 0: C = beta C (the kernel's rule leaves it to sgemm) */
    float a0[1] = {1.0f}, b0[2] = {1.0f, 1.0f}, c0[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    me_matmul(0, 0, 2, 2, 0, 1.0f, a0, 1, b0, 2, 0.5f, c0, 2);
    for (int i = 0; i < 4; i++) assert_float_equal(c0[i], 0.5f * (float)(i + 1), 0.0f);
}

static void linear_forward_and_backward_should_match_naive_loops(void **state) {
    (void)state;
    me_rng r;
    me_rng_seed(&r, 2);
    int t = 6, c = 5, oc = 4;
    float *x = rnd((size_t)t * c, &r), *w = rnd((size_t)oc * c, &r), *bias = rnd(oc, &r);
    float *y = malloc((size_t)t * oc * 4), *want = malloc((size_t)t * oc * 4);
    me_linear_forward(y, x, w, bias, t, c, oc);
    for (int i = 0; i < t; i++)
        for (int o = 0; o < oc; o++) {
            double s = bias[o];
            for (int j = 0; j < c; j++) s += (double)x[i * c + j] * w[o * c + j];
            want[i * oc + o] = (float)s;
        }
    assert_tensor_close(y, want, (size_t)t * oc, 1e-6);

    float *dy = rnd((size_t)t * oc, &r);
    float *dx = calloc((size_t)t * c, 4), *dw = calloc((size_t)oc * c, 4), *db = calloc(oc, 4);
    float *dx_w = calloc((size_t)t * c, 4), *dw_w = calloc((size_t)oc * c, 4), *db_w = calloc(oc, 4);
    dx[0] = dx_w[0] = 0.5f; /* backward must add, not overwrite */
    me_linear_backward(dx, dw, db, dy, x, w, t, c, oc);
    for (int i = 0; i < t; i++)
        for (int o = 0; o < oc; o++) {
            db_w[o] += dy[i * oc + o];
            for (int j = 0; j < c; j++) {
                dx_w[i * c + j] += dy[i * oc + o] * w[o * c + j];
                dw_w[o * c + j] += dy[i * oc + o] * x[i * c + j];
            }
        }
    assert_tensor_close(dx, dx_w, (size_t)t * c, 1e-6);
    assert_tensor_close(dw, dw_w, (size_t)oc * c, 1e-6);
    assert_tensor_close(db, db_w, (size_t)oc, 1e-6);
    free(x), free(w), free(bias), free(y), free(want), free(dy), free(dx), free(dw), free(db);
    free(dx_w), free(dw_w), free(db_w);
}

static void layernorm_forward_should_match_the_textbook_formula(void **state) {
    (void)state;
    me_rng r;
    me_rng_seed(&r, 3);
    int t = 5, c = 33;
    float eps = 1e-5f;
    float *x = rnd((size_t)t * c, &r), *g = rnd(c, &r), *b = rnd(c, &r);
    for (int i = 0; i < t * c; i++) x[i] = 3.0f + 2.0f * x[i]; /* an offset mean */
    float *y = malloc((size_t)t * c * 4), *want = malloc((size_t)t * c * 4), mean[5], rstd[5], wm[5], wr[5];
    me_layernorm_forward(y, mean, rstd, x, g, b, t, c, eps);
    for (int i = 0; i < t; i++) {
        double mu = 0, var = 0;
        for (int j = 0; j < c; j++) mu += x[i * c + j];
        mu /= c;
        for (int j = 0; j < c; j++) var += (x[i * c + j] - mu) * (x[i * c + j] - mu);
        var /= c; /* biased, as PyTorch */
        wm[i] = (float)mu;
        wr[i] = (float)(1.0 / sqrt(var + eps));
        for (int j = 0; j < c; j++) want[i * c + j] = (float)((x[i * c + j] - mu) / sqrt(var + eps) * g[j] + b[j]);
    }
    assert_tensor_close(y, want, (size_t)t * c, 1e-6);
    assert_tensor_close(mean, wm, 5, 1e-6);
    assert_tensor_close(rstd, wr, 5, 1e-6);
    free(x), free(g), free(b), free(y), free(want);
}

static void activations_should_match_double_precision_formulas(void **state) {
    (void)state;
    enum { N = 201 };
    float x[N], y[N], want[N], dx[N], dwant[N], dy[N];
    for (int i = 0; i < N; i++) {
        x[i] = -6.0f + 12.0f * (float)i / (N - 1);
        dy[i] = 1.0f + 0.01f * (float)i;
    }
    me_gelu_forward(y, x, N);
    memset(dx, 0, sizeof dx);
    me_gelu_backward(dx, dy, x, N);
    for (int i = 0; i < N; i++) {
        double v = x[i];
        double cdf = 0.5 * (1.0 + erf(v / sqrt(2.0)));
        want[i] = (float)(v * cdf);
        dwant[i] = (float)(dy[i] * (cdf + v * exp(-0.5 * v * v) / sqrt(2.0 * 3.14159265358979323846)));
    }
    assert_tensor_close(y, want, N, 1e-6);
    assert_tensor_close(dx, dwant, N, 1e-6);
    me_relu_forward(y, x, N);
    memset(dx, 0, sizeof dx);
    me_relu_backward(dx, dy, x, N);
    for (int i = 0; i < N; i++) {
        want[i] = x[i] > 0 ? x[i] : 0;
        dwant[i] = x[i] > 0 ? dy[i] : 0;
    }
    assert_tensor_close(y, want, N, 0.0);
    assert_tensor_close(dx, dwant, N, 0.0);
}

/* Lengths below one vector of the softmax, whole vectors, and whole vectors plus a window over the rest;
 * keys padded here and there, at the end, and all of them (that query's weights and output are 0). */
static void attention_forward_should_match_naive_softmax_with_padding(void **state) {
    (void)state;
    static const int lens[] = {5, 8, 13, 16, 21};
    me_rng r;
    me_rng_seed(&r, 4);
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int b = 3, s = lens[li], d = 6, h = 3, dh = 2;
        uint8_t *pad = malloc((size_t)b * s);
        for (int j = 0; j < s; j++) {
            pad[j] = j % 4 == 3 || j == 1; /* scattered */
            pad[s + j] = j >= s - 3;         /* the last three */
            pad[2 * s + j] = 1;              /* every key */
        }
        float *qkv = rnd((size_t)b * s * 3 * d, &r);
        float *out = malloc((size_t)b * s * d * 4), *want = calloc((size_t)b * s * d, 4);
        float *probs = malloc((size_t)b * h * s * s * 4), *pwant = calloc((size_t)b * h * s * s, 4);
        me_attention_forward(out, probs, NULL, qkv, pad, b, s, d, h, 0.0f, NULL, 0);
        for (int bi = 0; bi < b; bi++)
            for (int hi = 0; hi < h; hi++)
                for (int i = 0; i < s; i++) {
                    double sc[21], mx = -1e300, sum = 0;
                    for (int j = 0; j < s; j++) {
                        double dot = 0;
                        for (int k = 0; k < dh; k++)
                            dot += (double)qkv[(bi * s + i) * 3 * d + hi * dh + k] *
                                   qkv[(bi * s + j) * 3 * d + d + hi * dh + k];
                        sc[j] = dot / sqrt((double)dh);
                        if (!pad[bi * s + j] && sc[j] > mx) mx = sc[j];
                    }
                    for (int j = 0; j < s; j++) sum += sc[j] = pad[bi * s + j] ? 0.0 : exp(sc[j] - mx);
                    if (sum == 0.0) continue; /* every key padding: the weights and the output stay 0 */
                    for (int j = 0; j < s; j++) pwant[((size_t)(bi * h + hi) * s + i) * s + j] = (float)(sc[j] / sum);
                    for (int k = 0; k < dh; k++) {
                        double o = 0;
                        for (int j = 0; j < s; j++) o += sc[j] / sum * qkv[(bi * s + j) * 3 * d + 2 * d + hi * dh + k];
                        want[(bi * s + i) * d + hi * dh + k] = (float)o;
                    }
                }
        assert_tensor_close(probs, pwant, (size_t)b * h * s * s, 1e-6);
        assert_tensor_close(out, want, (size_t)b * s * d, 1e-6);
        free(qkv), free(out), free(want), free(probs), free(pwant), free(pad);
    }
}

static void dropout_should_keep_about_one_minus_p_and_rescale(void **state) {
    (void)state;
    enum { B = 4, S = 50, C = 500, N = B * S * C };
    me_dropout_key k = {.key = {1, 2, 3, 4}, .step = 7, .example0 = 0};
    float *x = malloc(N * 4), *dx = malloc(N * 4);
    uint8_t *mask = malloc(N);
    for (int i = 0; i < N; i++) x[i] = 1.0f;
    me_dropout_forward(x, mask, B, S, C, 0.25f, &k, 0, ME_DROP_RES1);
    size_t kept = 0;
    for (int i = 0; i < N; i++) {
        kept += mask[i];
        assert_true(mask[i] ? fabsf(x[i] - 1.0f / 0.75f) < 1e-6f : x[i] == 0.0f);
    }
    /* binomial(1e5, 0.75): sd ~ 137, allow 5 sd */
    assert_in_range(kept, 75000 - 700, 75000 + 700);
    me_dropout_backward(dx, x, mask, N, 0.25f);
    for (int i = 0; i < N; i++) assert_true(mask[i] ? fabsf(dx[i] - x[i] / 0.75f) < 1e-6f : dx[i] == 0.0f);
    free(x), free(dx), free(mask);
}

/* Masks of x[B,S,C] with the given key, step, first example and thread count. */
static uint8_t *masks(int b, int s, int c, uint64_t step, uint64_t example0, int layer, me_drop_site site,
                      int threads) {
    me_ops_set_threads(threads);
    me_dropout_key k = {.key = {11, 12, 13, 14}, .step = step, .example0 = example0};
    size_t n = (size_t)b * s * c;
    float *x = malloc(n * 4);
    uint8_t *m = malloc(n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    me_dropout_forward(x, m, b, s, c, 0.5f, &k, layer, site);
    free(x);
    me_ops_set_threads(1);
    return m;
}

static void dropout_masks_should_not_depend_on_the_split_the_padding_or_the_threads(void **state) {
    (void)state;
    enum { B = 6, S = 40, C = 300 };
    size_t row = (size_t)S * C;
    uint8_t *whole = masks(B, S, C, 3, 0, 1, ME_DROP_ACT, 1);
    /* examples 0..1 and 2..5 computed apart (two shards): the same bits as the whole batch */
    uint8_t *lo = masks(2, S, C, 3, 0, 1, ME_DROP_ACT, 1), *hi = masks(4, S, C, 3, 2, 1, ME_DROP_ACT, 1);
    assert_memory_equal(lo, whole, 2 * row);
    assert_memory_equal(hi, whole + 2 * row, 4 * row);
    /* two threads (the batch is above the threading threshold) */
    uint8_t *two = masks(B, S, C, 3, 0, 1, ME_DROP_ACT, 2);
    assert_memory_equal(two, whole, B * row);
    /* a shorter padded length: position p of example e keeps its mask */
    uint8_t *shorter = masks(B, S - 15, C, 3, 0, 1, ME_DROP_ACT, 1);
    for (int e = 0; e < B; e++)
        assert_memory_equal(shorter + (size_t)e * (S - 15) * C, whole + (size_t)e * row, (size_t)(S - 15) * C);
    /* another step, layer, site or example: independent masks, agreeing on about half the elements
     * (p = 0.5: binomial(12000, 0.5), sd ~ 55; allow 6 sd) */
    uint8_t *other[4] = {masks(B, S, C, 4, 0, 1, ME_DROP_ACT, 1), masks(B, S, C, 3, 0, 2, ME_DROP_ACT, 1),
                         masks(B, S, C, 3, 0, 1, ME_DROP_RES2, 1), masks(B, S, C, 3, 1, 1, ME_DROP_ACT, 1)};
    for (int o = 0; o < 4; o++) {
        size_t same = 0;
        for (size_t i = 0; i < row; i++) same += other[o][i] == whole[i];
        assert_in_range(same, row / 2 - 330, row / 2 + 330);
        free(other[o]);
    }
    free(whole), free(lo), free(hi), free(two), free(shorter);
}

static void attention_dropout_should_not_depend_on_the_split(void **state) {
    (void)state;
    me_rng r;
    me_rng_seed(&r, 6);
    enum { B = 4, S = 9, D = 12, H = 3 };
    size_t nq = (size_t)B * S * 3 * D, np = (size_t)B * H * S * S, no = (size_t)B * S * D;
    float *qkv = rnd(nq, &r), *out = malloc(no * 4), *probs = malloc(np * 4), *drop = malloc(np * 4);
    float *out2 = malloc(no * 4), *probs2 = malloc(np * 4), *drop2 = malloc(np * 4);
    me_dropout_key k = {.key = {5, 6, 7, 8}, .step = 2, .example0 = 10};
    me_attention_forward(out, probs, drop, qkv, NULL, B, S, D, H, 0.3f, &k, 1);
    /* examples 1..3 alone, their first example being the whole batch's example 11 */
    me_dropout_key k1 = k;
    k1.example0 = 11;
    size_t per_q = (size_t)S * 3 * D, per_p = (size_t)H * S * S;
    me_attention_forward(out2, probs2, drop2, qkv + per_q, NULL, B - 1, S, D, H, 0.3f, &k1, 1);
    assert_memory_equal(drop2, drop + per_p, (B - 1) * per_p * sizeof(float));
    assert_memory_equal(out2, out + (size_t)S * D, (size_t)(B - 1) * S * D * sizeof(float));
    /* dropped weights are zero, kept ones are p / (1 - 0.3) */
    size_t zeros = 0;
    for (size_t i = 0; i < np; i++) {
        if (drop[i] == 0.0f) zeros++;
        else assert_true(fabsf(drop[i] - probs[i] / 0.7f) <= 1e-6f * fabsf(drop[i]));
    }
    /* binomial(972, 0.3): mean 292, sd 14; allow 5 sd */
    assert_in_range(zeros, 292 - 72, 292 + 72);
    free(qkv), free(out), free(probs), free(drop), free(out2), free(probs2), free(drop2);
}

/* Runs forward + backward of a block large enough to take every threaded path (split matmuls,
 * heads in parallel, row- and column-parallel LayerNorm) and returns y, dx and all gradients. */
static float *block_outputs(int threads, int d_ff, size_t *n_out) {
    me_ops_set_threads(threads);
    me_model_config m;
    memset(&m, 0, sizeof m);
    m.d_model = 128, m.n_heads = 4, m.d_ff = d_ff, m.n_layers = 2, m.activation = ME_ACT_GELU;
    m.layer_norm_eps = 1e-5f, m.final_norm = 1;
    int b = 8, s = 40;
    me_params p;
    me_params_init(&p);
    me_encoder e;
    me_rng r;
    me_rng_seed(&r, 9);
    assert_int_equal(me_encoder_register(&e, &p, "", &m, NULL), ME_OK);
    assert_int_equal(me_params_alloc(&p, NULL), ME_OK);
    me_encoder_init_weights(&e, &p, &r);
    assert_int_equal(me_encoder_alloc(&e, b, s, NULL), ME_OK);
    size_t n = (size_t)b * s * 128;
    float *x = rnd(n, &r), *dy = rnd(n, &r);
    uint8_t *pad = calloc((size_t)b * s, 1);
    for (int i = 0; i < b; i++) pad[i * s + s - 1 - i] = 1;
    size_t total = 2 * n + p.total;
    float *outv = calloc(total, sizeof *outv);
    memcpy(outv, me_encoder_forward(&e, &p, x, pad, b, s, 0, NULL), n * sizeof(float));
    me_params_zero_grad(&p);
    me_encoder_backward(&e, &p, outv + n, dy);
    memcpy(outv + 2 * n, p.grad, p.total * sizeof(float));
    me_encoder_free(&e);
    me_params_free(&p);
    free(x), free(dy), free(pad);
    *n_out = total;
    me_ops_set_threads(1);
    return outv;
}

static void threaded_block_should_agree_with_one_thread(void **state) {
    (void)state;
    for (int ff = 0; ff < 2; ff++) {
        size_t n1, n2;
        int d_ff = ff ? 512 : 200; /* >= 3 d_model (qkv gradient in hpre) and below */
        float *one = block_outputs(1, d_ff, &n1), *two = block_outputs(2, d_ff, &n2);
        assert_int_equal(n1, n2);
        assert_tensor_close(two, one, n1, 1e-6);
        free(one), free(two);
    }
}

/* The bias of a linear layer on every path: added as the small-product kernel stores C (whole tiles and
 * partial ones), written into C before an sgemm (K over 256), and offset with the columns when two
 * threads split the product by columns; against double-precision loops. */
static void linear_forward_bias_should_match_naive_loops_on_every_path(void **state) {
    (void)state;
    me_rng r;
    me_rng_seed(&r, 14);
    const int sizes[][3] = {{37, 64, 48}, {5, 300, 33}, {300, 300, 97}, {97, 200, 300}}; /* t, c, oc */
    for (int threads = 1; threads <= 2; threads++) {
        me_ops_set_threads(threads);
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
            int t = sizes[z][0], c = sizes[z][1], oc = sizes[z][2];
            float *x = rnd((size_t)t * c, &r), *w = rnd((size_t)oc * c, &r), *bias = rnd(oc, &r);
            float *y = malloc((size_t)t * oc * 4), *want = malloc((size_t)t * oc * 4);
            for (size_t i = 0; i < (size_t)t * oc; i++) y[i] = NAN; /* only written */
            me_linear_forward(y, x, w, bias, t, c, oc);
            for (int i = 0; i < t; i++)
                for (int o = 0; o < oc; o++) {
                    double s = bias[o];
                    for (int j = 0; j < c; j++) s += (double)x[(size_t)i * c + j] * w[(size_t)o * c + j];
                    want[(size_t)i * oc + o] = (float)s;
                }
            assert_tensor_close(y, want, (size_t)t * oc, 1e-5);
            free(x), free(w), free(bias), free(y), free(want);
        }
    }
    me_ops_set_threads(1);
}

static void split_matmul_should_match_naive_loops(void **state) {
    (void)state;
    me_rng r;
    me_rng_seed(&r, 10);
    me_ops_set_threads(2);
    int m = 300, n = 97; /* above the split threshold, not a multiple of 16 */
    /* K 260: every thread's block goes to sgemm; K 200: to the small-product kernel */
    assert_false(me_small_matmul_fits(m / 2, 260));
    assert_true(me_small_matmul_fits(m / 2, 200) && me_small_matmul_fits(n, 200));
    for (int k = 260; k >= 200; k -= 60)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int wide = 0; wide < 2; wide++) {
                    int mm = wide ? n : m, nn = wide ? m : n; /* split by rows, then by columns */
                    float *a = rnd((size_t)mm * k, &r), *b = rnd((size_t)k * nn, &r), *c = rnd((size_t)mm * nn, &r);
                    float *want = malloc((size_t)mm * nn * 4);
                    memcpy(want, c, (size_t)mm * nn * 4);
                    me_matmul(ta, tb, mm, nn, k, 1.0f, a, ta ? mm : k, b, tb ? k : nn, 0.5f, c, nn);
                    naive_matmul(ta, tb, mm, nn, k, 1.0f, a, ta ? mm : k, b, tb ? k : nn, 0.5f, want, nn);
                    assert_tensor_close(c, want, (size_t)mm * nn, 1e-5);
                    free(a), free(b), free(c), free(want);
                }
    me_ops_set_threads(1);
}

static void add_layernorm_should_equal_the_add_and_the_layernorm_bit_for_bit(void **state) {
    (void)state;
    me_rng r;
    me_rng_seed(&r, 12);
    int t = 7, c = 37; /* not a multiple of the kernel's 8 lanes */
    size_t n = (size_t)t * c;
    float *x = rnd(n, &r), *skip = rnd(n, &r), *g = rnd(c, &r), *b = rnd(c, &r);
    float *res = malloc(n * 4), *y = malloc(n * 4), *want = malloc(n * 4), mean[7], rstd[7], wm[7], wr[7];
    memcpy(res, x, n * 4);
    me_add_layernorm_forward(y, mean, rstd, res, skip, g, b, t, c, 1e-5f);
    me_add_inplace(x, skip, n);
    me_layernorm_forward(want, wm, wr, x, g, b, t, c, 1e-5f);
    assert_memory_equal(res, x, n * 4);
    assert_memory_equal(y, want, n * 4);
    assert_memory_equal(mean, wm, sizeof mean);
    assert_memory_equal(rstd, wr, sizeof rstd);
    free(x), free(skip), free(g), free(b), free(res), free(y), free(want);
}

/* Softmax weights over scores spread across [-80, 0] below the row's maximum, each weight against
 * the softmax of the same float score differences in double, within a few float ulps of itself (the
 * exponential is the kernel's own). */
static void attention_weights_should_match_double_softmax_to_a_few_ulps_over_a_wide_range(void **state) {
    (void)state;
    me_rng r;
    me_rng_seed(&r, 13);
    int b = 1, s = 41, d = 1, h = 1; /* head width 1: score(i, j) = q_i k_j */
    float *qkv = calloc((size_t)s * 3, 4), *out = malloc((size_t)s * 4), *probs = malloc((size_t)s * s * 4);
    for (int i = 0; i < s; i++) {
        qkv[i * 3] = 1.0f + 0.05f * (float)i;                             /* q */
        qkv[i * 3 + 1] = -80.0f * me_rng_uniform(&r);                     /* k */
        qkv[i * 3 + 2] = 1.0f;                                            /* v */
    }
    me_attention_forward(out, probs, NULL, qkv, NULL, b, s, d, h, 0.0f, NULL, 0);
    double worst = 0.0;
    for (int i = 0; i < s; i++) {
        /* the float scores and their float differences from the maximum, as any float softmax has them
         * (a difference of -80 is itself rounded by ~5e-6): the exponential and the normalisation are
         * what is checked */
        float sc[41], mx = -INFINITY;
        double sum = 0.0;
        for (int j = 0; j < s; j++) {
            sc[j] = qkv[i * 3] * qkv[j * 3 + 1];
            if (sc[j] > mx) mx = sc[j];
        }
        for (int j = 0; j < s; j++) sum += exp((double)(sc[j] - mx));
        for (int j = 0; j < s; j++) {
            double want = exp((double)(sc[j] - mx)) / sum, got = probs[i * s + j];
            if (want < 1e-30) continue; /* flushed towards zero below e^-87: nothing beside the maximum */
            double rel = fabs(got - want) / want;
            if (rel > worst) worst = rel;
        }
    }
    if (worst > 5e-7) fail_msg("worst relative error of a softmax weight %.3g, expected <= 5e-7", worst);
    free(qkv), free(out), free(probs);
}

/* The set form of the LayerNorm backward against the adding form on a cleared buffer, and its copy. */
static void layernorm_backward_set_should_equal_the_added_gradient_and_copy_it(void **state) {
    (void)state;
    me_rng r;
    me_rng_seed(&r, 14);
    int t = 6, c = 21;
    size_t n = (size_t)t * c;
    float *x = rnd(n, &r), *dy = rnd(n, &r), *g = rnd(c, &r), *b = rnd(c, &r), *y = malloc(n * 4);
    float mean[6], rstd[6];
    me_layernorm_forward(y, mean, rstd, x, g, b, t, c, 1e-5f);
    float *want = calloc(n, 4), *got = malloc(n * 4), *copy = malloc(n * 4);
    float *dg1 = calloc((size_t)c, 4), *db1 = calloc((size_t)c, 4), *dg2 = calloc((size_t)c, 4), *db2 = calloc((size_t)c, 4);
    for (size_t i = 0; i < n; i++) got[i] = copy[i] = 1e6f;
    me_layernorm_backward(want, dg1, db1, dy, x, g, mean, rstd, t, c);
    me_layernorm_backward_set(got, copy, dg2, db2, dy, x, g, mean, rstd, t, c);
    assert_memory_equal(got, want, n * 4);
    assert_memory_equal(copy, want, n * 4);
    assert_memory_equal(dg2, dg1, (size_t)c * 4);
    assert_memory_equal(db2, db1, (size_t)c * 4);
    free(x), free(dy), free(g), free(b), free(y), free(want), free(got), free(copy);
    free(dg1), free(db1), free(dg2), free(db2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matmul_should_match_naive_loops_for_every_transpose),
        cmocka_unit_test(small_matmul_should_match_naive_loops_at_tile_edges),
        cmocka_unit_test(linear_forward_and_backward_should_match_naive_loops),
        cmocka_unit_test(layernorm_forward_should_match_the_textbook_formula),
        cmocka_unit_test(activations_should_match_double_precision_formulas),
        cmocka_unit_test(attention_forward_should_match_naive_softmax_with_padding),
        cmocka_unit_test(dropout_should_keep_about_one_minus_p_and_rescale),
        cmocka_unit_test(dropout_masks_should_not_depend_on_the_split_the_padding_or_the_threads),
        cmocka_unit_test(attention_dropout_should_not_depend_on_the_split),
        cmocka_unit_test(linear_forward_bias_should_match_naive_loops_on_every_path),
        cmocka_unit_test(split_matmul_should_match_naive_loops),
        cmocka_unit_test(add_layernorm_should_equal_the_add_and_the_layernorm_bit_for_bit),
        cmocka_unit_test(layernorm_backward_set_should_equal_the_added_gradient_and_copy_it),
        cmocka_unit_test(attention_weights_should_match_double_softmax_to_a_few_ulps_over_a_wide_range),
        cmocka_unit_test(threaded_block_should_agree_with_one_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
