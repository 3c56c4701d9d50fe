/* Checkpoints: one safetensors file holding everything the next training step depends on.
 *
 *   parameters           under their registry names (what `minienc count` prints), F32
 *   AdamW state          optim.exp_avg.<name>, optim.exp_avg_sq.<name>; SGD: optim.momentum_buffer.<name>
 *   __metadata__         format "minienc-checkpoint-1", step, optim_step, optimizer, threads, ranks,
 *                        rng (the dropout key, four hex words: masks are counter-based on it, see ops.h), sampler ("seed,epoch,pos"), config (the
 *                        resolved INI text, without log.out_dir so that a checkpoint is the same
 *                        wherever the run lives)
 * A PyTorch module with the same layout loads the parameters with load_state_dict (strict=False, or
 * after dropping the optim.* entries). */
#ifndef MINIENC_CHECKPOINT_H
#define MINIENC_CHECKPOINT_H

#include <stdint.h>

#include "minienc/config.h"
#include "minienc/optim.h"
#include "minienc/params.h"
#include "minienc/rng.h"

typedef struct {
    int64_t step;              /* updates done */
    me_rng rng;                /* dropout generator */
    uint64_t sampler_seed, sampler_epoch, sampler_pos;
    int threads;               /* kernel threads the run used (0: unknown); a large matmul split across
                                  another number of threads can round differently */
    int ranks;                 /* data-parallel processes the run used (0: unknown, i.e. 1); another
                                  count sums gradients in another order */
} me_train_state;

/* Writes atomically. o may be NULL (parameters only). */
me_status me_checkpoint_save(const char *path, const me_config *cfg, const me_params *p, const me_optim *o,
                             const me_train_state *s, me_error *err);

/* Reads the stored config (defaults, then the stored text) into cfg. ME_ERR_FORMAT if absent. */
me_status me_checkpoint_read_config(const char *path, me_config *cfg, me_error *err);

/* The checkpoint a command-line argument names: a run directory means RUN_DIR/checkpoint.safetensors,
 * anything else the file itself. Writes the path into out[cap]. ME_ERR_NOFILE when the file (or the
 * run directory's checkpoint) does not exist, ME_ERR_USAGE when the path does not fit. */
me_status me_checkpoint_locate(const char *arg, char *out, size_t cap, me_error *err);

/* The step stored in a checkpoint's __metadata__ (updates done); 0 when absent (a file of parameters
 * alone). ME_ERR_FORMAT when it is not a non-negative integer. */
me_status me_checkpoint_read_step(const char *path, int64_t *step, me_error *err);

/* Compares the architecture a checkpoint was trained with (stored) with the one a config asks for
 * (cfg): every key the config table flags ME_KEY_ARCH (the model.* keys that change tensors or
 * computation, and data.task). ME_ERR_CONFIG naming the first key that differs, both values as a
 * config file writes them ("gelu", "true", 64) and cfg's origin. */
me_status me_checkpoint_check_config(const char *path, const me_config *stored, const me_config *cfg,
                                     me_error *err);

/* Loads parameters (every registry tensor must be present with its exact shape; extra parameter
 * tensors are refused), and when o and s are non-NULL the optimizer state and training state. */
me_status me_checkpoint_load(const char *path, me_params *p, me_optim *o, me_train_state *s, me_error *err);

#endif
