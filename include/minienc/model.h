/* The full model: token embedding + positions (learned or sinusoidal), the encoder stack, and a linear
 * head with softmax cross-entropy, for per-token tagging or per-sequence classification (mean of the
 * non-padded outputs). With vocab_size == 0 the model is the encoder stack alone (tensor names without
 * the "encoder." prefix, exactly as nn.TransformerEncoder's state_dict).
 *
 * Tensor names: embed.weight [V, D]; pos_embed.weight [max_len, D] (learned positions only);
 * encoder.layers.{i}.* and encoder.norm.* (see encoder.h); head.weight [C, D]; head.bias [C].
 *
 * Life cycle: me_model_build (registers and allocates parameters) -> me_model_init_weights ->
 * me_model_alloc (activations) -> me_model_forward_loss / me_model_backward -> me_model_free. */
#ifndef MINIENC_MODEL_H
#define MINIENC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "minienc/config.h"
#include "minienc/encoder.h"
#include "minienc/params.h"

typedef struct {
    me_model_config cfg;
    me_task task;
    me_params params;
    me_encoder enc;
    int embed, pos, head_w, head_b; /* registry indices, -1 when absent */
    int max_b, max_s;
    /* activations and scratch (NULL until me_model_alloc) */
    float *x;        /* [B,S,D] embedding + position */
    float *dx;       /* [B,S,D] */
    float *pooled;   /* [B,D] classify: mean of non-padded outputs */
    float *dpooled;  /* [B,D] */
    float *dout;     /* [B,S,D] gradient w.r.t. the encoder output */
    float *logits;   /* [B*S,C] (tag) or [B,C] (classify): the head's output */
    float *probs;    /* [B*S,C] or [B,C]: softmax of logits; backward turns it into d(loss)/d(logits) */
    float *sin_pos;  /* [max_len,D] sinusoidal table when positional = sinusoidal */
    /* last forward pass */
    int b, s;
    const int32_t *tokens, *targets;
    const uint8_t *pad;
    double loss, loss_sum; /* mean and sum over the counted targets */
    size_t n_targets; /* positions (tag) or sequences (classify) that count in the loss */
} me_model;

/* Closed-form parameter counts of a config, d = d_model, F = d_ff, L = n_layers, V = vocab_size,
 * C = n_classes (0: V), M = max_len. The one implementation of these formulas; `minienc count` shows
 * them beside the live tensors. */
typedef struct {
    size_t attention;  /* per layer: in_proj [3d,d] + [3d], out_proj [d,d] + [d] = 4 d^2 + 4 d */
    size_t ffn;        /* per layer: linear1 [F,d] + [F], linear2 [d,F] + [d] = 2 d F + F + d */
    size_t norm;       /* per LayerNorm: gamma [d] + beta [d] = 2 d */
    size_t layernorm;  /* every LayerNorm: (2 L + final_norm) x 2 d */
    size_t embeddings; /* V d (+ M d with learned positions); 0 without a vocabulary */
    size_t head;       /* C d + C; 0 without a vocabulary */
    size_t total;      /* L (attention + ffn + 2 norm) + final_norm x norm + embeddings + head */
} me_param_counts;

/* Fills *out. Returns 0, with *out zeroed, when any count overflows size_t. */
int me_model_param_counts(const me_model_config *cfg, me_param_counts *out);

/* The total of me_model_param_counts (0 on size_t overflow). */
size_t me_model_param_count(const me_model_config *cfg);

/* Registers every tensor and allocates parameters and gradients. Refuses, before allocating, a model
 * whose parameters (x4: values, gradients, two AdamW moments) exceed the machine's memory, naming
 * the config origin of d_model and the bytes it would need. task is used by the head's loss. */
me_status me_model_build(me_model *m, const me_config *cfg, me_error *err);

/* As me_model_build, for a thread shard's replica: its parameter values are data, the values block of
 * a model built from the same config (borrowed: me_params_borrow_data), so only the gradient block is
 * allocated. */
me_status me_model_build_replica(me_model *m, const me_config *cfg, float *data, me_error *err);

/* PyTorch-style initial values: embeddings N(0, 1), positions N(0, 1)... (see model.c), encoder as
 * me_encoder_init_weights, head U(-1/sqrt(D), 1/sqrt(D)). */
void me_model_init_weights(me_model *m, me_rng *rng);

/* Allocates activations for batches up to max_b x max_s tokens (max_s <= cfg.max_len). */
me_status me_model_alloc(me_model *m, int max_b, int max_s, me_error *err);

/* Forward pass and mean cross-entropy loss over the counted targets.
 * tokens[B,S], pad[B,S] (1 = padding), targets: tag [B,S] with -1 = ignore, classify [B].
 * training: dropout with the masks of drop (see ops.h; drop->example0 is the global index of example
 * 0 of this batch), otherwise drop may be NULL. correct (may be NULL) gets the number of counted
 * targets whose argmax is right. Returns the loss (NaN if no target counts); m->loss_sum holds the
 * summed loss and m->n_targets the count. */
double me_model_forward(me_model *m, const int32_t *tokens, const uint8_t *pad, const int32_t *targets, int b,
                        int s, int training, const me_dropout_key *drop, size_t *correct);

/* The k most probable classes of every output row of the last me_model_forward (tag: B*S positions,
 * classify: B sequences), most probable first, ties to the lower class (as the loss's argmax):
 * idx[rows, k] class ids and p[rows, k] their softmax probabilities (p may be NULL). 1 <= k <= n_classes.
 * Call before me_model_backward, which overwrites the probabilities with gradients. */
void me_model_top_k(const me_model *m, int k, int32_t *idx, float *p);

/* Backward of the last me_model_forward: adds d(loss)/d(params) into m->params.grad. */
void me_model_backward(me_model *m);

/* Backward of the last forward when its batch is one shard of a larger batch holding total_targets
 * counted targets: adds d(loss_sum / total_targets)/d(params), so that the shards' gradients sum to
 * the gradient of the whole batch's mean loss (not a mean of the shards' means). me_model_backward is
 * me_model_backward_shard(m, m->n_targets). m->enc.ready, when set, is also told when the head's and
 * the embeddings' gradients are final. */
void me_model_backward_shard(me_model *m, size_t total_targets);

void me_model_free(me_model *m);

#endif
