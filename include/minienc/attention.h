/* Attention maps: the softmax probabilities every self-attention layer used, for a set of inputs, as
 * `minienc predict --attention OUT_DIR` writes them, and their charts.
 *
 * File (OUT_DIR/attention.safetensors):
 *   encoder.layers.{i}.self_attn.weights  F32 [N, H, S, S]  layer i, input n, head h, query q (third
 *                                         axis), key k (fourth): softmax(q kᵀ / √(d/h)) as the forward
 *                                         pass computed it (eval mode: no dropout); exactly 0 on padding
 *                                         keys, and rows of padding queries all 0
 *   tokens                                I64 [N, S]        input tokens, -1 for padding
 *   __metadata__                          format "minienc-attention-1", checkpoint (its path), step
 * N inputs in order, H heads, S the longest input. These are the values PyTorch's
 * self_attn(x, x, x, key_padding_mask=pad, need_weights=True, average_attn_weights=False) gives on
 * the layer's attention input (the layer input for post-LN, norm1 of it for pre-LN), except on the
 * rows of padding queries, which PyTorch computes like any other and this file sets to 0.
 *
 * Charts (me_attention_png): one PNG per input, a grid of layers (rows) by heads (columns), each an
 * S × S heatmap of one head's probabilities, query down and key across, the input's tokens on both
 * axes, one 0–1 colour bar for all. */
#ifndef MINIENC_ATTENTION_H
#define MINIENC_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "minienc/status.h"

#define ME_ATTENTION_FORMAT "minienc-attention-1"

typedef struct {
    size_t n;          /* inputs */
    int layers, heads;
    int s;             /* longest input */
    float *weights;    /* [layers, n, heads, s, s], owned */
    int64_t *tokens;   /* [n, s], -1 for padding, owned */
} me_attention;

/* Allocates zeroed weights and tokens filled with -1 for n inputs of at most s tokens. */
me_status me_attention_alloc(me_attention *a, size_t n, int layers, int heads, int s, me_error *err);
void me_attention_free(me_attention *a);

/* The weights of layer l, input i: [heads, s, s]. */
static inline float *me_attention_at(const me_attention *a, int l, size_t i) {
    return a->weights + (((size_t)l * a->n + i) * (size_t)a->heads) * (size_t)a->s * (size_t)a->s;
}
/* Number of tokens of input i (up to its first padding entry). */
int me_attention_len(const me_attention *a, size_t i);

/* Writes the file described above, atomically. checkpoint may be NULL. */
me_status me_attention_write(const me_attention *a, const char *path, const char *checkpoint, int64_t step,
                             me_error *err);
/* Reads and checks such a file: the layer tensors numbered 0..L-1 without gaps, every shape
 * [N, H, S, S] against tokens [N, S]. ME_ERR_FORMAT (naming the tensor) otherwise. */
me_status me_attention_read(me_attention *a, const char *path, me_error *err);

/* Draws input i's attention (its own length, padding left out) as a PNG, written atomically. title
 * (UTF-8, e.g. the input and the prediction) goes on top, shortened with "..." when too wide. The same
 * inputs give byte-identical files. Without the chart font (me_font_default_path()) nothing is drawn:
 * ME_ERR_FONT, naming the package that installs it. */
me_status me_attention_png(const me_attention *a, size_t i, const char *title, const char *path, me_error *err);

#endif
