/* Parameter audit: counts live tensors by group and sets each group's closed-form count, evaluated
 * from the model config alone by me_model_param_counts (model.h, which gives the formulas), beside
 * the live count.
 *
 * Groups: layer i attention, layer i FFN, layer i norm1 and norm2, final norm, embeddings, head; and
 * the summaries: all LayerNorm gamma+beta, and the total. */
#ifndef MINIENC_COUNT_H
#define MINIENC_COUNT_H

#include <stddef.h>

#include "minienc/config.h"
#include "minienc/params.h"
#include "minienc/safetensors.h"
#include "minienc/status.h"

typedef struct {
    const char *name; /* borrowed */
    int ndim;
    size_t shape[8];
    size_t count;
} me_count_tensor;

typedef struct {
    char name[64];      /* "layers.0 attention", "embeddings", ... "LayerNorm γ+β", "total" */
    char formula[256];  /* "4 × 512² + 4 × 512" (UTF-8) */
    size_t expected;    /* formula evaluated */
    size_t live;        /* summed from the tensors */
    int summary;        /* 1 for the LayerNorm and total rows */
} me_count_group;

typedef struct {
    me_count_group *groups;
    int n;
    size_t total, layernorm; /* live */
    int all_ok;              /* every group's live count equals its formula and no tensor is unknown */
    char unknown[256];       /* first tensor that fits no group, "" if none */
} me_count_report;

/* Fills t[] (room for f->n rows) with a file's parameter tensors: every float tensor except the
 * optimizer state (optim.*). Names are borrowed from f. Returns the number of rows. */
int me_count_tensors_of_file(me_count_tensor *t, const me_st_file *f);

/* Fills t[] (room for p->n rows) with every tensor of a registry. Names are borrowed from p. */
int me_count_tensors_of_params(me_count_tensor *t, const me_params *p);

/* Builds the report for tensors t[n] (parameter tensors only) of a model with config cfg.
 * prefix is "" for a bare encoder or "encoder." inside a full model. */
me_status me_count_build(me_count_report *r, const me_count_tensor *t, int n, const me_model_config *cfg,
                         me_error *err);

/* Infers d_model, d_ff, n_layers, final_norm, vocab_size, n_classes, max_len, positional from tensor
 * names and shapes (for files without a stored config); n_heads is left 0 (it does not change counts). */
me_status me_count_infer_config(me_model_config *cfg, const me_count_tensor *t, int n, me_error *err);

void me_count_free(me_count_report *r);

#endif
