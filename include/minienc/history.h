/* gamma/beta histories: full snapshots of every LayerNorm weight (gamma) and bias (beta) over training.
 *
 * File (history.safetensors): one F32 tensor [snapshots, d_model] per LayerNorm parameter, named as
 * the parameter ("encoder.layers.0.norm1.weight", ...), and "step" [snapshots] I64; __metadata__
 * "format" = "minienc-history-1" and, when the history has one, "config": the run's resolved config as
 * INI text (as a checkpoint stores it, without log.out_dir), so that the file alone says what run it
 * is. Rewritten atomically, so it is readable at every moment. layernorm.csv beside it holds one row per snapshot
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
    char *config;               /* the run's config as INI text, owned; NULL when unknown */
} me_history;

/* Tracks every tensor flagged ME_PARAM_NORM in the registry, in registry order. */
me_status me_history_init(me_history *h, const me_params *p, me_error *err);

/* Appends a snapshot of the live tensors at `step` (replaces the last one if it has the same step). */
me_status me_history_record(me_history *h, const me_params *p, int64_t step, me_error *err);

/* Sets (a copy of) the config text written into the file's metadata; NULL clears it. */
me_status me_history_set_config(me_history *h, const char *text, me_error *err);

/* Drops snapshots whose step is greater than max_step (used when resuming). */
void me_history_truncate(me_history *h, int64_t max_step);

me_status me_history_write(const me_history *h, const char *path, me_error *err);

/* Reads a history file (tensors unbound: param = -1), with its config text when it has one. Validates
 * shapes and steps. */
me_status me_history_read(me_history *h, const char *path, me_error *err);

/* Binds a read history to a registry: same tensors, same sizes, else ME_ERR_SHAPE naming the tensor. */
me_status me_history_bind(me_history *h, const me_params *p, me_error *err);

/* Snapshot k of tensor i: [dim[i]] values. */
static inline const float *me_history_at(const me_history *h, int i, size_t k) { return h->data[i] + k * h->dim[i]; }

/* One LayerNorm of a history: its γ (weight) and β (bias) tensors. */
typedef struct {
    char prefix[ME_NAME_MAX]; /* "encoder.layers.0.norm1" */
    char stem[ME_NAME_MAX];   /* "layers.0.norm1": the prefix without "encoder.", bytes outside
                                 [A-Za-z0-9._-] as '_' (chart file names, CSV columns) */
    int gamma, beta;          /* tensor indices in the history, -1 when absent */
} me_history_norm;

/* Groups the history's tensors by LayerNorm (name without ".weight" / ".bias"), in the order they first
 * appear, into g[h->n] (at most one LayerNorm per tensor). Returns how many. */
int me_history_norms(const me_history *h, me_history_norm *g);

/* ||x_k − x_0||_2 of tensor i: its L2 distance at snapshot k from its first snapshot (accumulated in
 * double, in index order). */
double me_history_l2_from_first(const me_history *h, int i, size_t k);

/* Writes layernorm.csv (see above) atomically. */
me_status me_history_write_csv(const me_history *h, const char *path, me_error *err);

void me_history_free(me_history *h);

#endif
