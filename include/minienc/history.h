/* gamma/beta histories: full snapshots of every LayerNorm weight (gamma) and bias (beta) over training.
 *
 * File (history.safetensors): one F32 tensor [snapshots, d_model] per LayerNorm parameter, named as
 * the parameter ("encoder.layers.0.norm1.weight", ...), and "step" [snapshots] I64; rewritten
 * atomically, so it is readable at every moment. layernorm.csv beside it holds one row per snapshot
 * and tensor: step,tensor,mean,std,min,max,l2_from_init (std is the population standard deviation;
 * l2_from_init is the L2 distance from the tensor's first snapshot). */
#ifndef MINIENC_HISTORY_H
#define MINIENC_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "minienc/params.h"
#include "minienc/status.h"

typedef struct {
    int n;                      /* tensors tracked */
    char (*names)[ME_NAME_MAX]; /* [n] */
    size_t *dim;                /* [n] values per snapshot */
    int *param;                 /* [n] registry index, -1 when not bound to a model */
    int *is_gamma;              /* [n] 1 for a LayerNorm weight (initial value 1), 0 for a bias */
    size_t n_snap, cap;
    int64_t *steps;             /* [cap] */
    float **data;               /* [n] arrays of [cap * dim] */
} me_history;

/* Tracks every tensor flagged ME_PARAM_NORM in the registry, in registry order. */
me_status me_history_init(me_history *h, const me_params *p, me_error *err);

/* Appends a snapshot of the live tensors at `step` (replaces the last one if it has the same step). */
me_status me_history_record(me_history *h, const me_params *p, int64_t step, me_error *err);

/* Drops snapshots whose step is greater than max_step (used when resuming). */
void me_history_truncate(me_history *h, int64_t max_step);

me_status me_history_write(const me_history *h, const char *path, me_error *err);

/* Reads a history file (tensors unbound: param = -1). Validates shapes and steps. */
me_status me_history_read(me_history *h, const char *path, me_error *err);

/* Binds a read history to a registry: same tensors, same sizes, else ME_ERR_SHAPE naming the tensor. */
me_status me_history_bind(me_history *h, const me_params *p, me_error *err);

/* Snapshot k of tensor i: [dim[i]] values. */
static inline const float *me_history_at(const me_history *h, int i, size_t k) { return h->data[i] + k * h->dim[i]; }

/* Writes layernorm.csv (see above) atomically. */
me_status me_history_write_csv(const me_history *h, const char *path, me_error *err);

void me_history_free(me_history *h);

#endif
