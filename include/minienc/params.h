/* The parameter registry: named tensors (PyTorch state_dict names) laid out in one contiguous float
 * block for values and one for gradients. Counting, checkpoints, history and the optimizer all walk it.
 *
 * Life cycle: me_params_init, me_params_add for every tensor (no memory yet), me_params_alloc once,
 * then use; me_params_free releases everything. Pointers returned by me_params_data/grad stay valid
 * until me_params_free. */
#ifndef MINIENC_PARAMS_H
#define MINIENC_PARAMS_H

#include <stddef.h>

#include "minienc/status.h"

#define ME_NAME_MAX 96
#define ME_MAX_DIMS 4

/* Flags describing a tensor's role. */
enum {
    ME_PARAM_NORM = 1u << 0,   /* a LayerNorm gamma or beta (recorded in histories) */
    ME_PARAM_BIAS = 1u << 1,   /* a bias vector */
    ME_PARAM_GAMMA = 1u << 2,  /* a LayerNorm gamma (initial value 1) */
    ME_PARAM_EMBED = 1u << 3   /* an embedding table */
};

typedef struct {
    char name[ME_NAME_MAX];
    int ndim;
    size_t shape[ME_MAX_DIMS];
    size_t count;  /* product of shape */
    size_t offset; /* in floats, into data and grad */
    unsigned flags;
} me_tensor_info;

typedef struct {
    me_tensor_info *t;
    int n, cap;
    size_t total; /* sum of counts */
    float *data;  /* [total], 64-byte aligned, owned (unless borrowed) */
    float *grad;  /* [total], 64-byte aligned, owned */
    int borrowed; /* data belongs to another registry (me_params_borrow_data) */
} me_params;

void me_params_init(me_params *p);

/* Registers a tensor; its offset is the running total. Fails on a duplicate name, a name too long,
 * a zero dimension or a size_t overflow of the total. *index_out (if non-NULL) gets its index. */
me_status me_params_add(me_params *p, const char *name, int ndim, const size_t *shape, unsigned flags,
                        int *index_out, me_error *err);

/* Allocates the value and gradient blocks, both zeroed (the gradient block alone when the values are
 * borrowed: me_params_borrow_data). */
me_status me_params_alloc(me_params *p, me_error *err);

/* Index of the tensor with that exact name, or -1. */
int me_params_find(const me_params *p, const char *name);

static inline float *me_params_data(const me_params *p, int i) { return p->data + p->t[i].offset; }
static inline float *me_params_grad(const me_params *p, int i) { return p->grad + p->t[i].offset; }

void me_params_zero_grad(me_params *p);

/* Makes p read its values from `data`, the value block of another allocated registry with the same
 * layout (a thread shard's model computes with the main model's parameters into its own gradient
 * block). p's own value block is released; me_params_free leaves `data` to its owner. Called before
 * me_params_alloc, that then allocates the gradient block alone (no value block is ever touched);
 * called after it (a model built whole), the value block is freed. */
void me_params_borrow_data(me_params *p, float *data);

/* into->grad[i] = shards[0]->grad[i] + ... + shards[n-1]->grad[i], added in shard order (so the sum does
 * not depend on how many threads do it; they take ranges of i). The registries share one layout. */
void me_params_sum_grads(me_params *into, const me_params *const *shards, int n);

void me_params_free(me_params *p);

#endif
