/* Numeric kernels. Row-major throughout. Shapes are given in the comment of every function;
 * T is the number of tokens (batch * seq). Backward kernels ADD into their gradient outputs;
 * callers zero gradients explicitly. None of these allocate. */
#ifndef MINIENC_OPS_H
#define MINIENC_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "minienc/rng.h"


/* Threads for every kernel (OpenMP; OpenBLAS itself is kept single-threaded and each large matmul
 * is split across these threads). n <= 0 means 1. */
void me_ops_set_threads(int n);
int me_ops_threads(void);

/* The one matmul entry point (over cblas_sgemm):
 *   C[M,N] = alpha * op(A) op(B) + beta * C,  op(A) is [M,K], op(B) is [K,N]
 * transA: A is stored [K,M] (lda >= M) instead of [M,K] (lda >= K); likewise transB. */
void me_matmul(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *c, int ldc);

/* Linear layer, PyTorch layout: out[T,OC] = inp[T,C] weight[OC,C]^T + bias[OC] (bias may be NULL). */
void me_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int t, int c,
                       int oc);
/* dinp[T,C] += dout[T,OC] weight[OC,C] (dinp may be NULL);
 * dweight[OC,C] += dout^T inp; dbias[OC] += sum_t dout (dbias may be NULL). */
void me_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, int t, int c, int oc);

/* LayerNorm over the last dimension: out[T,C] = (inp - mean) * rstd * weight + bias;
 * saves mean[T] and rstd[T] = 1/sqrt(var + eps) (biased variance, as PyTorch). */
void me_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                          const float *bias, int t, int c, float eps);
/* The residual add and the LayerNorm after it in one pass: res[T,C] += skip[T,C], then
 * out = LayerNorm(res) as me_layernorm_forward (bit for bit the same as the two calls). */
void me_add_layernorm_forward(float *out, float *mean, float *rstd, float *res, const float *skip,
                              const float *weight, const float *bias, int t, int c, float eps);
/* dinp[T,C] += dL/dinp; dweight[C] += sum_t dout * xhat; dbias[C] += sum_t dout. */
void me_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, const float *mean, const float *rstd, int t, int c);
/* The same, except that dinp[T,C] is set (= dL/dinp), not added to, and also copied to dcopy[T,C] when
 * dcopy is not NULL: one pass instead of clearing dinp, the backward and a copy (a residual's
 * gradient goes to both of its branches). */
void me_layernorm_backward_set(float *dinp, float *dcopy, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const float *mean, const float *rstd, int t,
                               int c);

/* Activations, elementwise over n values. GELU is the exact erf form (PyTorch's "gelu"). */
void me_relu_forward(float *out, const float *inp, size_t n);
void me_gelu_forward(float *out, const float *inp, size_t n);
/* dinp[n] += dout * act'(inp) */
void me_relu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void me_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* In place: d[n] *= act'(inp[n]) (the gradient buffer may be the activation's own storage). */
void me_relu_grad_inplace(float *d, const float *inp, size_t n);
void me_gelu_grad_inplace(float *d, const float *inp, size_t n);

/* y[n] += x[n] */
void me_add_inplace(float *y, const float *x, size_t n);

/* Counter-based dropout. Whether an element is kept is a pure function of
 *   (key, step, example, layer, site, a, row, col)
 * (a SplitMix64-style hash: the row's coordinates are absorbed one word at a time through the
 * SplitMix64 finaliser, and element col is the finaliser of row_state + (col + 1) * golden gamma), so
 * example 17's mask at step 300 is the same whether the batch is processed whole, split across
 * processes or split across threads, and whatever its padded length. key is the run's dropout key
 * (derived from the seed, saved in checkpoints); example is the example's index in the step's whole
 * batch; a is the attention head (0 elsewhere); row the position (the query position for attention);
 * col the feature (the key position for attention). */
typedef struct {
    uint64_t key[4];   /* the run's dropout key */
    uint64_t step;     /* 0-based update index */
    uint64_t example0; /* index in the step's whole batch of the first example handed to the kernels */
} me_dropout_key;

/* Where in a layer a mask is drawn (one independent stream each). */
typedef enum {
    ME_DROP_ATTN = 1, /* attention weights [B,H,S,S]: a = head, row = query, col = key position */
    ME_DROP_RES1 = 2, /* self-attention branch before the residual add [B,S,D] */
    ME_DROP_ACT = 3,  /* FFN activation [B,S,F] */
    ME_DROP_RES2 = 4  /* FFN branch before the residual add [B,S,D] */
} me_drop_site;

/* The hash state of one row; element col is kept iff me_dropout_keep(state, col, p). */
uint64_t me_dropout_row(const me_dropout_key *k, uint64_t example, int layer, me_drop_site site, uint64_t a,
                        uint64_t row);
/* Uniform in [0, 1) with 24 bits, from the row state and the column; kept iff >= p. */
static inline float me_dropout_uniform(uint64_t row_state, uint64_t col) {
    return (float)(me_rng_mix64(row_state + (col + 1) * ME_RNG_GAMMA) >> 40) * (1.0f / 16777216.0f);
}

/* Inverted dropout in place over x[B,S,C] (example bi is k->example0 + bi, row si, column ci):
 * x = keep ? x / (1 - p) : 0, keep ~ Bernoulli(1 - p) as above. mask[B,S,C] records keep (1) or
 * drop (0). p in [0, 1). */
void me_dropout_forward(float *x, uint8_t *mask, int b, int s, int c, float p, const me_dropout_key *k, int layer,
                        me_drop_site site);
/* dx[n] = dy * mask / (1 - p)  (overwrites; dx may equal dy). */
void me_dropout_backward(float *dx, const float *dy, const uint8_t *mask, size_t n, float p);

/* Multi-head scaled dot-product self-attention over a packed projection.
 * qkv[B,S,3*D] holds q | k | v per token (head h of q at columns h*Dh .. h*Dh+Dh-1, Dh = D/H);
 * key_pad[B,S] (may be NULL): nonzero marks a padding key, which gets zero attention weight
 * (a query whose keys are all padding attends to nothing and outputs 0);
 * probs[B,H,S,S] = softmax(q k^T / sqrt(Dh)) saved for backward;
 * probs_drop[B,H,S,S]: when dropout > 0 the dropped, rescaled weights actually used (NULL otherwise),
 * masks from k at site ME_DROP_ATTN of `layer` (k may be NULL when dropout is 0);
 * out[B,S,D] = concat_h(probs_h v_h). */
void me_attention_forward(float *out, float *probs, float *probs_drop, const float *qkv,
                          const uint8_t *key_pad, int b, int s, int d, int h, float dropout,
                          const me_dropout_key *k, int layer);
/* dqkv[B,S,3D] = dL/dqkv given dout[B,S,D] (set, not added to: every element is written, so the
 * buffer needs no clearing); dprobs is scratch of [B,H,S,S] floats. */
void me_attention_backward(float *dqkv, float *dprobs, const float *dout, const float *qkv, const float *probs,
                           const float *probs_drop, int b, int s, int d, int h, float dropout);

#endif
