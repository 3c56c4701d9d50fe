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

/* Inverted dropout in place: x[i] = keep ? x[i] / (1 - p) : 0, keep ~ Bernoulli(1 - p).
 * mask[n] records keep (1) or drop (0). p in [0, 1). */
void me_dropout_forward(float *x, uint8_t *mask, size_t n, float p, me_rng *rng);
/* dx[n] = dy * mask / (1 - p)  (overwrites; dx may equal dy). */
void me_dropout_backward(float *dx, const float *dy, const uint8_t *mask, size_t n, float p);

/* Multi-head scaled dot-product self-attention over a packed projection.
 * qkv[B,S,3*D] holds q | k | v per token (head h of q at columns h*Dh .. h*Dh+Dh-1, Dh = D/H);
 * key_pad[B,S] (may be NULL): nonzero marks a padding key, which gets zero attention weight
 * (a query whose keys are all padding attends to nothing and outputs 0);
 * probs[B,H,S,S] = softmax(q k^T / sqrt(Dh)) saved for backward;
 * probs_drop[B,H,S,S]: when dropout > 0 the dropped, rescaled weights actually used (NULL otherwise);
 * out[B,S,D] = concat_h(probs_h v_h). */
void me_attention_forward(float *out, float *probs, float *probs_drop, const float *qkv,
                          const uint8_t *key_pad, int b, int s, int d, int h, float dropout, me_rng *rng);
/* dqkv[B,S,3D] = dL/dqkv given dout[B,S,D] (set, not added to: every element is written, so the
 * buffer needs no clearing); dprobs is scratch of [B,H,S,S] floats. */
void me_attention_backward(float *dqkv, float *dprobs, const float *dout, const float *qkv, const float *probs,
                           const float *probs_drop, int b, int s, int d, int h, float dropout);

#endif
