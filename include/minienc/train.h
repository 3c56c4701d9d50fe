/* Training runs: the loop, evaluation, and the run directory.
 *
 * Run directory (cfg->log.out_dir):
 *   config.ini              the resolved config, every key written out
 *   metrics.csv             one row per step: loss, lr, grad_norm, tokens/s, and the validation loss
 *                           and accuracy at evaluation steps; see metrics.h
 *   checkpoint.safetensors  see checkpoint.h
 *   history.safetensors     gamma/beta snapshots, see history.h (step 0, every history_every, last step)
 *   layernorm.csv           per snapshot and tensor statistics, see history.h
 * Files are rewritten atomically at every checkpoint (checkpoint_every, the end, an interruption), so
 * the directory is consistent at every moment. */
#ifndef MINIENC_TRAIN_H
#define MINIENC_TRAIN_H

#include <signal.h>
#include <stddef.h>

#include "minienc/config.h"
#include "minienc/data.h"
#include "minienc/dist.h"
#include "minienc/model.h"
#include "minienc/predict.h" /* me_evaluate */

typedef struct {
    long step, steps;          /* updates done, target */
    double loss, lr, grad_norm, tokens_per_s;
    double valid_loss, valid_acc; /* last evaluation (NaN until the first): loss and accuracy per token
                                     (tag) or per sequence (classify) */
    double valid_seq_acc;      /* last evaluation: sequences whose every target is right (exact match) */
    long valid_step;           /* the step the validation figures belong to, -1 before the first */
    int evaluated;             /* this step ran an evaluation */
    double elapsed_s;          /* wall time since the run (or resume) started */
    long start_step;           /* step the run (or resume) started from */
} me_train_progress;

typedef struct {
    /* called after every step (the CLI decides what to show); may be NULL */
    void (*progress)(void *user, const me_train_progress *p);
    /* called once with a one-line note (resumed from, nothing to do, ...); may be NULL */
    void (*note)(void *user, const char *msg);
    void *user;
    /* set asynchronously (e.g. by a signal handler) to stop after the current step, saving everything */
    volatile sig_atomic_t *stop;
    /* data-parallel group (see dist.h), NULL: this process alone. In a group every rank calls
     * me_train_run with the same config; rank 0 alone reads and writes the run directory and calls
     * progress and note; the others load the data files themselves. */
    me_dist *dist;
} me_train_hooks;

typedef struct {
    long steps_done;    /* updates in the checkpoint at the end */
    double valid_loss, valid_acc; /* last evaluation, NaN if none */
    double valid_seq_acc;         /* its sequence (exact-match) accuracy, NaN if none */
} me_train_result;

/* train.thread_shards = 0 (auto) trains in thread shards, one per thread, models up to this d_model on
 * up to this many threads: measured on 2 cores, shards beat split kernels on the toy model (d 64) and
 * on the seed block (d 512) in alternating runs (README "Thread shards"). Beyond, kernels are split:
 * every shard holds its own gradient block, and their sum each step grows with the thread count. */
#define ME_AUTO_SHARDS_MAX_D 512
#define ME_AUTO_SHARDS_MAX_THREADS 8

/* The thread shards a process uses for `batch` examples per step on `threads` threads: train.thread_shards
 * when set (> 0); with 0 (auto), min(threads, batch) within the bounds above, else 1. 1 means no
 * shards: every kernel is split over the threads. */
int me_train_thread_shards(const me_config *cfg, int batch, int threads);

/* Trains per cfg. Each step's batch (train.batch_size, the global batch) is split into contiguous
 * shards across hooks->dist's ranks (see dist.h); the result equals the single-process run's up to
 * the order of floating-point sums, and a checkpoint resumes with any number of processes. resume: continue the run in cfg->log.out_dir from its checkpoint (metrics and history
 * are kept up to the checkpoint's step and appended). force: start afresh even if out_dir is not empty
 * (its run files are replaced). Without either, a non-empty out_dir is refused with ME_ERR_EXISTS.
 * Returns ME_ERR_INTERRUPTED after saving everything when *hooks->stop was set. */

me_status me_train_run(const me_config *cfg, int resume, int force, const me_train_hooks *hooks,
                       me_train_result *res, me_error *err);

/* Loads the data set named by path with the model's sizes (vocab, classes, max_len, task). */
me_status me_train_load_data(me_dataset *ds, const char *path, const me_config *cfg, me_error *err);

#endif
