/* The transformer encoder stack: PyTorch's nn.TransformerEncoder over nn.TransformerEncoderLayer
 * (batch_first), post-LN or pre-LN, optional final LayerNorm, relu or exact gelu, dropout in training.
 *
 * Life cycle:
 *   me_encoder_register(&e, &params, "encoder.", &cfg, err);  registers the tensors (names below)
 *   me_params_alloc(&params, err);
 *   me_encoder_init_weights(&e, &params, &rng);               PyTorch's initialisation scheme
 *   me_encoder_alloc(&e, max_batch, max_seq, err);            all activation and scratch memory
 *   me_encoder_forward / me_encoder_backward                    no allocation
 *   me_encoder_free(&e);                                      frees what me_encoder_alloc took
 * Tensor names per layer i (after the prefix): layers.{i}.self_attn.in_proj_weight [3D, D],
 * .in_proj_bias [3D], .self_attn.out_proj.weight [D, D], .out_proj.bias [D], .linear1.weight [F, D],
 * .linear1.bias [F], .linear2.weight [D, F], .linear2.bias [D], .norm1.weight [D], .norm1.bias [D],
 * .norm2.weight [D], .norm2.bias [D]; with final_norm: norm.weight [D], norm.bias [D]. */
#ifndef MINIENC_ENCODER_H
#define MINIENC_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "minienc/config.h"
#include "minienc/ops.h"
#include "minienc/params.h"
#include "minienc/rng.h"

/* Indices into the registry of one layer's tensors. */
typedef struct {
    int in_w, in_b, out_w, out_b, l1_w, l1_b, l2_w, l2_b, n1_w, n1_b, n2_w, n2_b;
} me_layer_index;

/* Saved activations of one layer for a batch of T = B*S tokens. */
typedef struct {
    const float *inp;       /* [T,D] the layer's input (not owned) */
    float *ln1_out;         /* [T,D] */
    float *ln1_mean, *ln1_rstd; /* [T] */
    float *qkv;             /* [T,3D] */
    float *probs;           /* [B,H,S,S] */
    float *probs_drop;      /* [B,H,S,S] when dropout > 0, else NULL */
    float *attn;            /* [T,D] heads concatenated, input of out_proj */
    float *res1;            /* [T,D] post-LN: input of norm1; pre-LN: x + dropout(sa) */
    float *ln2_out;         /* [T,D] */
    float *ln2_mean, *ln2_rstd; /* [T] */
    float *hpre;            /* [T,F] linear1 output */
    float *hact;            /* [T,F] act(hpre), after dropout */
    float *res2;            /* [T,D] post-LN: input of norm2; pre-LN: the layer output */
    uint8_t *mask1, *mask_act, *mask2; /* dropout masks [T,D], [T,F], [T,D] when dropout > 0 */
} me_layer_acts;

typedef struct {
    me_model_config cfg;
    me_layer_index *li; /* [n_layers] */
    int norm_w, norm_b; /* final norm indices or -1 */
    int max_b, max_s;
    me_layer_acts *acts; /* [n_layers] */
    float *fn_out, *fn_mean, *fn_rstd; /* final norm: [T,D], [T], [T] */
    /* backward workspace; the FFN's gradients reuse the layer's hact buffer, dqkv reuses hpre when
     * d_ff >= 3 d_model (both are dead by then), and the out_proj input gradient reuses g */
    float *g[2];   /* [T,D] ping-pong gradient w.r.t. layer outputs */
    float *dres;   /* [T,D] */
    float *dln;    /* [T,D] */
    float *dqkv;   /* [T,3D] only when d_ff < 3 d_model, else NULL */
    float *dprobs; /* [B,H,S,S] */
    void *block;   /* the one allocation everything above points into */
    /* shape of the last forward pass */
    int b, s;
    const uint8_t *key_pad;
    int training;
    const float *out; /* [B,S,D] output of the last forward pass */
    /* optional: told during backward which tail of the gradient block is final (see me_encoder_backward) */
    void (*ready)(void *ctx, size_t from);
    void *ready_ctx;
} me_encoder;

/* Registers the stack's tensors with names prefixed by `prefix` ("" or "encoder."). Checks cfg
 * (d_model % n_heads etc.). Does not allocate activations. */
me_status me_encoder_register(me_encoder *e, me_params *p, const char *prefix, const me_model_config *cfg,
                              me_error *err);

/* PyTorch's initial value schemes (but each layer drawn independently, where nn.TransformerEncoder
 * deep-copies one layer so that all start identical): in_proj xavier_uniform, biases of attention 0, out_proj and linear1/2
 * kaiming_uniform(a=sqrt(5)) i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), linear biases
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), LayerNorm weight 1 and bias 0. */
void me_encoder_init_weights(const me_encoder *e, me_params *p, me_rng *rng);

/* Bytes of the activations saved for backward (saved) and of the backward workspace (work) for
 * max_b x max_s tokens; returns saved + work, 0 on size_t overflow. Either pointer may be NULL. */
size_t me_encoder_activation_bytes(const me_model_config *cfg, int max_b, int max_s, size_t *saved, size_t *work);

/* Allocates activations and scratch for batches up to max_b sequences of up to max_s tokens. */
me_status me_encoder_alloc(me_encoder *e, int max_b, int max_s, me_error *err);

/* Forward pass. x[B,S,D] (must stay valid until backward), key_pad[B,S] or NULL (nonzero = padding).
 * training: apply dropout (cfg.dropout) with the counter-based masks of drop (see ops.h; layer l's
 * masks use layer index l); otherwise no dropout and drop may be NULL.
 * Returns the output [B,S,D] (owned by e, valid until the next forward). */
const float *me_encoder_forward(me_encoder *e, const me_params *p, const float *x, const uint8_t *key_pad,
                                int b, int s, int training, const me_dropout_key *drop);

/* Backward pass of the last forward: dy[B,S,D] = dL/dout. Adds parameter gradients into p->grad and
 * dL/dx into dx[B,S,D]. dx may be NULL when not needed; the first layer then skips the work that only
 * feeds dL/dx (as PyTorch's autograd does for an input that does not require grad). Consumes the
 * saved activations: call once per forward. When e->ready is set, it is called whenever the gradients
 * in [from, p->total) of the registry's gradient block have become final (backward runs from the
 * last registered tensors to the first): after the final norm, after each layer's FFN half (post-LN)
 * and after each layer. */
void me_encoder_backward(me_encoder *e, me_params *p, float *dx, const float *dy);

void me_encoder_free(me_encoder *e);

#endif
