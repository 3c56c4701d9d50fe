#include "minienc/ops.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <string.h>

void me_matmul(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a, lda, b, ldb, beta, c, ldc);
}

void me_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int t, int c,
                       int oc) {
    float beta = 0.0f;
    if (bias) {
        for (int i = 0; i < t; i++) memcpy(out + (size_t)i * oc, bias, (size_t)oc * sizeof(float));
        beta = 1.0f;
    }
    /* out[T,OC] = inp[T,C] * trans(weight[OC,C]) (+ bias rows) */
    me_matmul(0, 1, t, oc, c, 1.0f, inp, c, weight, c, beta, out, oc);
}

void me_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, int t, int c, int oc) {
    /* dinp[T,C] += dout[T,OC] * weight[OC,C] */
    if (dinp) me_matmul(0, 0, t, c, oc, 1.0f, dout, oc, weight, c, 1.0f, dinp, c);
    /* dweight[OC,C] += trans(dout[T,OC]) * inp[T,C] */
    me_matmul(1, 0, oc, c, t, 1.0f, dout, oc, inp, c, 1.0f, dweight, c);
    if (dbias) {
        for (int i = 0; i < t; i++) {
            const float *row = dout + (size_t)i * oc;
            for (int j = 0; j < oc; j++) dbias[j] += row[j];
        }
    }
}

void me_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                          const float *bias, int t, int c, float eps) {
    for (int i = 0; i < t; i++) {
        const float *x = inp + (size_t)i * c;
        float *y = out + (size_t)i * c;
        /* two passes in double: the mean first, then the centred variance (no cancellation) */
        double sum = 0.0;
        for (int j = 0; j < c; j++) sum += x[j];
        double mu = sum / c;
        double var = 0.0;
        for (int j = 0; j < c; j++) {
            double dx = x[j] - mu;
            var += dx * dx;
        }
        var /= c;
        double rs = 1.0 / sqrt(var + (double)eps);
        float m = (float)mu, r = (float)rs;
        for (int j = 0; j < c; j++) y[j] = (x[j] - m) * r * weight[j] + bias[j];
        mean[i] = m;
        rstd[i] = r;
    }
}

void me_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, const float *mean, const float *rstd, int t, int c) {
    for (int i = 0; i < t; i++) {
        const float *x = inp + (size_t)i * c;
        const float *dy = dout + (size_t)i * c;
        float *dx = dinp + (size_t)i * c;
        float m = mean[i], r = rstd[i];
        /* xhat = (x - mean) * rstd;  dxhat = dy * weight;
         * dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) */
        double sum_dxhat = 0.0, sum_dxhat_xhat = 0.0;
        for (int j = 0; j < c; j++) {
            float xhat = (x[j] - m) * r;
            float dxhat = dy[j] * weight[j];
            sum_dxhat += dxhat;
            sum_dxhat_xhat += (double)dxhat * xhat;
            dweight[j] += dy[j] * xhat;
            dbias[j] += dy[j];
        }
        float a = (float)(sum_dxhat / c), b = (float)(sum_dxhat_xhat / c);
        for (int j = 0; j < c; j++) {
            float xhat = (x[j] - m) * r;
            dx[j] += r * (dy[j] * weight[j] - a - xhat * b);
        }
    }
}

void me_relu_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void me_relu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
}

#define ME_SQRT1_2 0.70710678118654752440f
#define ME_INV_SQRT_2PI 0.39894228040143267794f

void me_gelu_forward(float *out, const float *inp, size_t n) {
    /* gelu(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2))) */
    for (size_t i = 0; i < n; i++) out[i] = 0.5f * inp[i] * (1.0f + erff(inp[i] * ME_SQRT1_2));
}

void me_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    /* gelu'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi) */
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * ME_SQRT1_2));
        float pdf = ME_INV_SQRT_2PI * expf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

void me_dropout_forward(float *x, uint8_t *mask, size_t n, float p, me_rng *rng) {
    float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) {
        uint8_t keep = me_rng_uniform(rng) >= p;
        mask[i] = keep;
        x[i] = keep ? x[i] * scale : 0.0f;
    }
}

void me_dropout_backward(float *dx, const float *dy, const uint8_t *mask, size_t n, float p) {
    float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) dx[i] = mask[i] ? dy[i] * scale : 0.0f;
}

/* Softmax of one row of scores in place, with padding keys excluded. Returns 0 if every key is padding
 * (the row is then all zeros). */
static int softmax_row(float *row, const uint8_t *key_pad, int s) {
    float mx = -INFINITY;
    for (int j = 0; j < s; j++)
        if (!(key_pad && key_pad[j]) && row[j] > mx) mx = row[j];
    if (mx == -INFINITY) {
        memset(row, 0, (size_t)s * sizeof(float));
        return 0;
    }
    float sum = 0.0f;
    for (int j = 0; j < s; j++) {
        float e = (key_pad && key_pad[j]) ? 0.0f : expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < s; j++) row[j] *= inv;
    return 1;
}

void me_attention_forward(float *out, float *probs, float *probs_drop, const float *qkv,
                          const uint8_t *key_pad, int b, int s, int d, int h, float dropout, me_rng *rng) {
    assert(d % h == 0);
    int dh = d / h, ld = 3 * d;
    float scale = 1.0f / sqrtf((float)dh);
    size_t ss = (size_t)s * s;
    for (int bi = 0; bi < b; bi++) {
        const float *base = qkv + (size_t)bi * s * ld;
        const uint8_t *pad = key_pad ? key_pad + (size_t)bi * s : NULL;
        for (int hi = 0; hi < h; hi++) {
            const float *q = base + hi * dh, *k = base + d + hi * dh, *v = base + 2 * d + hi * dh;
            float *p = probs + ((size_t)bi * h + hi) * ss;
            /* p[S,S] = scale * q[S,Dh] * trans(k[S,Dh])   (rows strided by 3D inside qkv) */
            me_matmul(0, 1, s, s, dh, scale, q, ld, k, ld, 0.0f, p, s);
            for (int i = 0; i < s; i++) softmax_row(p + (size_t)i * s, pad, s);
            const float *pv = p;
            if (dropout > 0.0f) {
                float *pd = probs_drop + ((size_t)bi * h + hi) * ss;
                float keep_scale = 1.0f / (1.0f - dropout);
                for (size_t i = 0; i < ss; i++) pd[i] = me_rng_uniform(rng) >= dropout ? p[i] * keep_scale : 0.0f;
                pv = pd;
            }
            /* out[S, head cols] = pv[S,S] * v[S,Dh]   (written into the head's column slice of out[S,D]) */
            me_matmul(0, 0, s, dh, s, 1.0f, pv, s, v, ld, 0.0f, out + (size_t)bi * s * d + hi * dh, d);
        }
    }
}

void me_attention_backward(float *dqkv, float *dprobs, const float *dout, const float *qkv, const float *probs,
                           const float *probs_drop, int b, int s, int d, int h, float dropout) {
    int dh = d / h, ld = 3 * d;
    float scale = 1.0f / sqrtf((float)dh);
    size_t ss = (size_t)s * s;
    for (int bi = 0; bi < b; bi++) {
        const float *base = qkv + (size_t)bi * s * ld;
        float *dbase = dqkv + (size_t)bi * s * ld;
        const float *dob = dout + (size_t)bi * s * d;
        for (int hi = 0; hi < h; hi++) {
            const float *q = base + hi * dh, *k = base + d + hi * dh, *v = base + 2 * d + hi * dh;
            float *dq = dbase + hi * dh, *dk = dbase + d + hi * dh, *dv = dbase + 2 * d + hi * dh;
            const float *doh = dob + hi * dh;
            const float *p = probs + ((size_t)bi * h + hi) * ss;
            const float *pv = dropout > 0.0f ? probs_drop + ((size_t)bi * h + hi) * ss : p;
            float *dp = dprobs + ((size_t)bi * h + hi) * ss;
            /* dpv[S,S] = dout_h[S,Dh] * trans(v[S,Dh]) */
            me_matmul(0, 1, s, s, dh, 1.0f, doh, d, v, ld, 0.0f, dp, s);
            /* dv[S,Dh] += trans(pv[S,S]) * dout_h[S,Dh] */
            me_matmul(1, 0, s, dh, s, 1.0f, pv, s, doh, d, 1.0f, dv, ld);
            if (dropout > 0.0f) {
                /* pv = p * keep / (1 - dropout): a kept weight is nonzero exactly where p is (and where p
                 * is zero the softmax backward below gives zero anyway) */
                float keep_scale = 1.0f / (1.0f - dropout);
                for (size_t i = 0; i < ss; i++) dp[i] = pv[i] != 0.0f ? dp[i] * keep_scale : 0.0f;
            }
            /* softmax backward, with the 1/sqrt(Dh) of the scores folded in:
             * dscores = scale * p * (dp - sum_j dp_j p_j) */
            for (int i = 0; i < s; i++) {
                const float *pr = p + (size_t)i * s;
                float *dr = dp + (size_t)i * s;
                float dot = 0.0f;
                for (int j = 0; j < s; j++) dot += pr[j] * dr[j];
                for (int j = 0; j < s; j++) dr[j] = scale * pr[j] * (dr[j] - dot);
            }
            /* dq[S,Dh] += dscores[S,S] * k[S,Dh];  dk[S,Dh] += trans(dscores) * q[S,Dh] */
            me_matmul(0, 0, s, dh, s, 1.0f, dp, s, k, ld, 1.0f, dq, ld);
            me_matmul(1, 0, s, dh, s, 1.0f, dp, s, q, ld, 1.0f, dk, ld);
        }
    }
}
