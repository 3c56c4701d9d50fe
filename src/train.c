#include "minienc/train.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "minienc/checkpoint.h"
#include "minienc/dist.h"
#include "minienc/history.h"
#include "minienc/metrics.h"
#include "minienc/ops.h"
#include "minienc/optim.h"

#include "file.h"
#include "internal.h"

/* Files a run directory holds; --force replaces exactly these. */
static const char *const run_files[] = {"config.ini", "metrics.csv", "checkpoint.safetensors", "history.safetensors",
                                        "layernorm.csv"};

/* The rows of an existing metrics.csv (read strictly) up to max_step, appended to log; a missing
 * file leaves log as it is (no metrics yet: the file starts afresh). */
static me_status reload_metrics(me_metrics_log *log, const char *path, int64_t max_step, long eval_every,
                                me_error *err) {
    if (me_file_probe(path) == ME_PATH_ABSENT) return ME_OK;
    me_metrics m;
    me_status st = me_metrics_read(&m, path, err);
    for (size_t i = 0; st == ME_OK && i < m.n && (int64_t)m.step[i] <= max_step; i++) {
        me_metrics_row row = me_metrics_row_at(&m, i);
        /* an evaluation taken only because the earlier run ended here: the uninterrupted run has none */
        if (row.step == max_step && (eval_every <= 0 || row.step % eval_every != 0))
            row.valid_loss = row.valid_acc = NAN;
        st = me_metrics_log_append(log, &row, err);
    }
    me_metrics_free(&m);
    return st;
}

static void join(char *out, size_t cap, const char *dir, const char *file) { snprintf(out, cap, "%s/%s", dir, file); }

me_status me_train_load_data(me_dataset *ds, const char *path, const me_config *cfg, me_error *err) {
    return me_dataset_load(ds, path, cfg->data.task, cfg->model.vocab_size, cfg->model.n_classes, cfg->model.max_len,
                           err);
}

typedef struct {
    me_config cfg; /* a copy, not a pointer: the run makes its paths absolute (config.ini, checkpoints)
                      and the caller's config stays as given */
    char dir[ME_PATH_MAX];
    me_model model;
    me_optim optim;
    me_history hist;
    me_dataset train, valid;
    int has_valid;
    me_sampler sampler;
    me_train_state state;
    me_metrics_log metrics;
    int32_t *tokens, *targets; /* [shard_cap, max_s] this process's shard of a batch */
    uint8_t *pad;              /* [shard_cap, max_s] */
    size_t *idx;               /* [batch_size] the step's whole batch */
    me_dist *dist;             /* the data-parallel group, NULL: this process alone */
    int rank, size;            /* 0 and 1 alone */
    int shard_cap;             /* most examples one shard holds: ceil(batch_size / size) */
    /* thread shards (me_train_thread_shards = R > 1): the process's shard is split again into R, each run
     * whole on one thread by a model that reads r->model's parameters into its own gradient block */
    me_model *reps;            /* [R] */
    me_params **rep_params;    /* [R] their registries */
    int n_reps, rep_cap, max_s; /* R, most examples a thread shard holds, longest sequence */
    int32_t *rep_tokens, *rep_targets; /* [R, rep_cap, max_s] */
    uint8_t *rep_pad;          /* [R, rep_cap, max_s] */
    double *rep_loss;          /* [R] */
    int replace;          /* --force over a non-empty run directory */
    int resumed_threads;  /* thread count stored in the checkpoint resumed from (0: unknown) */
    int resumed_ranks;    /* process count stored there (0: unknown, i.e. 1) */
    int history_missing;  /* resumed without a history.safetensors */
} run;

static void run_free(run *r) {
    me_model_free(&r->model);
    me_optim_free(&r->optim);
    me_history_free(&r->hist);
    me_dataset_free(&r->train);
    me_dataset_free(&r->valid);
    me_sampler_free(&r->sampler);
    me_metrics_log_free(&r->metrics);
    free(r->tokens), free(r->targets), free(r->pad), free(r->idx);
    for (int t = 0; t < r->n_reps; t++) me_model_free(&r->reps[t]);
    free(r->reps), free(r->rep_params), free(r->rep_tokens), free(r->rep_targets), free(r->rep_pad), free(r->rep_loss);
}

int me_train_thread_shards(const me_config *cfg, int batch, int threads) {
    if (cfg->train.thread_shards > 0) return cfg->train.thread_shards;
    if (cfg->model.d_model > ME_AUTO_SHARDS_MAX_D || threads < 2 || threads > ME_AUTO_SHARDS_MAX_THREADS || batch < 2)
        return 1;
    return threads < batch ? threads : batch;
}

/* The thread shards' models and batch buffers (see run). */
static me_status make_replicas(run *r, int R, me_error *err) {
    int b = r->cfg.train.batch_size;
    r->reps = calloc((size_t)R, sizeof *r->reps);
    r->rep_params = calloc((size_t)R, sizeof *r->rep_params);
    r->rep_loss = calloc((size_t)R, sizeof *r->rep_loss);
    if (!r->reps || !r->rep_params || !r->rep_loss)
        return me_error_set(err, ME_ERR_NOMEM, "out of memory for %d thread shards", R);
    r->rep_cap = (int)(((long)b + (long)r->size * R - 1) / ((long)r->size * R));
    /* the models first: their allocation refuses a batch beyond the machine's memory (a config error) */
    for (; r->n_reps < R; r->n_reps++) {
        me_model *m = &r->reps[r->n_reps];
        r->rep_params[r->n_reps] = &m->params;
        me_status st = me_model_build_replica(m, &r->cfg, r->model.params.data, err);
        if (st) return st;
        if ((st = me_model_alloc(m, r->rep_cap, r->max_s, err))) {
            r->n_reps++; /* built: freed with the others */
            return st;
        }
    }
    size_t cap = (size_t)R * (size_t)r->rep_cap * (size_t)r->max_s;
    r->rep_tokens = malloc(cap * sizeof *r->rep_tokens);
    r->rep_targets = malloc(cap * sizeof *r->rep_targets);
    r->rep_pad = malloc(cap);
    if (!r->rep_tokens || !r->rep_targets || !r->rep_pad)
        return me_error_set(err, ME_ERR_NOMEM, "out of memory for %d thread shards", R);
    return ME_OK;
}

/* Writes history, layernorm.csv and metrics first, the checkpoint last: a resume truncates the others
 * to the checkpoint's step, so a kill between the writes leaves a consistent run.
 * Snapshots are taken at step 0, every history_every steps (in the loop), at the run's last step and
 * at an interruption (final = 1), so that the history always ends at the checkpoint's values; an
 * intermediate checkpoint adds none. A resume drops an off-grid final snapshot again, so a resumed
 * run's history is the uninterrupted run's. */
static me_status save_all(run *r, int final, me_error *err) {
    char path[ME_PATH_MAX + 64];
    me_status st;
    if ((final || r->state.step == 0 || r->state.step >= r->cfg.train.steps) &&
        (st = me_history_record(&r->hist, &r->model.params, r->state.step, err)))
        return st;
    join(path, sizeof path, r->dir, "history.safetensors");
    if ((st = me_history_write(&r->hist, path, err))) return st;
    join(path, sizeof path, r->dir, "layernorm.csv");
    if ((st = me_history_write_csv(&r->hist, path, err))) return st;
    join(path, sizeof path, r->dir, "metrics.csv");
    if ((st = me_metrics_log_write(&r->metrics, path, err))) return st;
    me_sampler_get_state(&r->sampler, &r->state.sampler_seed, &r->state.sampler_epoch, &r->state.sampler_pos);
    join(path, sizeof path, r->dir, "checkpoint.safetensors");
    return me_checkpoint_save(path, &r->cfg, &r->model.params, &r->optim, &r->state, err);
}

/* --force: removes the files a run writes, charts included (nothing else in the directory). */
static me_status remove_run_files(const char *dir, me_error *err) {
    char path[2 * ME_PATH_MAX];
    for (size_t i = 0; i < sizeof run_files / sizeof run_files[0]; i++) {
        join(path, sizeof path, dir, run_files[i]);
        if (remove(path) != 0 && errno != ENOENT)
            return me_error_set(err, ME_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    }
    join(path, sizeof path, dir, "plots");
    DIR *d = opendir(path);
    if (!d) return ME_OK;
    struct dirent *e;
    me_status st = ME_OK;
    while (!st && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 4, ".png") != 0) continue;
        char file[3 * ME_PATH_MAX];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        if (remove(file) != 0 && errno != ENOENT)
            st = me_error_set(err, ME_ERR_IO, "%s: cannot remove: %s", file, strerror(errno));
    }
    closedir(d);
    return st;
}

static me_status prepare_dir(run *r, int resume, int force, me_error *err) {
    /* config.ini must be writable as INI (inih reads at most 200 bytes a line): find out before any
     * file is touched */
    char *text = NULL;
    me_status st = me_config_to_string(&r->cfg, 0, &text, err);
    free(text);
    if (st) return st;
    me_path_kind kind = me_file_probe(r->dir);
    if (resume) {
        char ck[ME_PATH_MAX + 64];
        join(ck, sizeof ck, r->dir, "checkpoint.safetensors");
        struct stat sb;
        if (stat(ck, &sb) != 0)
            return me_error_set(err, ME_ERR_USAGE, "%s: no checkpoint.safetensors to resume from", r->dir);
        return ME_OK;
    }
    if (kind == ME_PATH_NONEMPTY_DIR) {
        if (!force)
            return me_error_set(err, ME_ERR_EXISTS,
                                "%s: run directory is not empty; pass --resume to continue it or --force to replace it",
                                r->dir);
        r->replace = 1; /* the old files go once the new run is known to start */
    }
    return ME_OK; /* created by setup once the data and the model are known to be good */
}

static me_status setup(run *r, int resume, me_error *err) {
    me_config *c = &r->cfg;
    me_status st;
    int rank0 = r->rank == 0; /* only rank 0 reads and writes the run directory */
    if (resume && rank0) { /* the checkpoint's architecture must be the config's, before anything is loaded */
        char ck[ME_PATH_MAX + 64];
        me_config stored;
        join(ck, sizeof ck, r->dir, "checkpoint.safetensors");
        if ((st = me_checkpoint_read_config(ck, &stored, err)) || (st = me_checkpoint_check_config(ck, &stored, c, err)))
            return st;
    }
    if (c->model.vocab_size <= 0)
        return me_error_set(err, ME_ERR_CONFIG, "%s: model.vocab_size is required for training, expected >= 1",
                            me_config_origin(c, "model.vocab_size"));
    if (!c->data.train[0])
        return me_error_set(err, ME_ERR_CONFIG, "%s: data.train is required for training, expected a data file",
                            me_config_origin(c, "data.train"));
    if ((st = me_train_load_data(&r->train, c->data.train, c, err))) return st;
    if (c->data.valid[0]) {
        if ((st = me_train_load_data(&r->valid, c->data.valid, c, err))) return st;
        r->has_valid = 1;
    }
    if ((st = me_model_build(&r->model, c, err))) return st;
    me_rng init;
    me_rng_seed(&init, c->train.seed);
    me_model_init_weights(&r->model, &init);
    /* the dropout key and the data order, both derived from the seed (the key's four words are the
     * state of a generator seeded from it; dropout masks are counter-based on it, see ops.h) */
    me_rng_seed(&r->state.rng, c->train.seed ^ 0xD1B54A32D192ED03ull);
    int max_s = r->train.max_len_seen;
    if (r->has_valid && r->valid.max_len_seen > max_s) max_s = r->valid.max_len_seen;
    int b = c->train.batch_size;
    r->shard_cap = (b + r->size - 1) / r->size;
    r->max_s = max_s;
    int shards = me_train_thread_shards(c, r->shard_cap, me_ops_threads());
    if (shards > 1 && (st = make_replicas(r, shards, err))) return st;
    /* with thread shards the main model only evaluates, but in batches of the process's whole shard as
     * without them: the evaluation's sums (and so a run's reported loss, and what `minienc eval` of its
     * checkpoint gives) do not depend on the shard count */
    if ((st = me_model_alloc(&r->model, r->shard_cap, max_s, err))) return st;
    if ((st = me_optim_init(&r->optim, &r->model.params, &c->train, err))) return st;
    if ((st = me_sampler_init(&r->sampler, r->train.n, c->train.seed + 1, err))) return st;
    if ((st = me_history_init(&r->hist, &r->model.params, err))) return st;
    size_t cap = (size_t)r->shard_cap * (size_t)max_s;
    r->tokens = malloc(cap * sizeof *r->tokens);
    r->targets = malloc(cap * sizeof *r->targets);
    r->pad = malloc(cap);
    r->idx = malloc((size_t)b * sizeof *r->idx);
    if (!r->tokens || !r->targets || !r->pad || !r->idx)
        return me_error_set(err, ME_ERR_NOMEM, "out of memory for batches of %d x %d", b, max_s);
    if (!rank0) return ME_OK; /* rank 0 sends the state it loads (share_state) */
    char path[ME_PATH_MAX + 64];
    if (resume) {
        join(path, sizeof path, r->dir, "checkpoint.safetensors");
        if ((st = me_checkpoint_load(path, &r->model.params, &r->optim, &r->state, err))) return st;
        r->resumed_threads = r->state.threads;
        r->resumed_ranks = r->state.ranks;
        if ((st = me_sampler_set_state(&r->sampler, r->state.sampler_seed, r->state.sampler_epoch,
                                       r->state.sampler_pos, err)))
            return st;
        join(path, sizeof path, r->dir, "history.safetensors");
        me_history old;
        struct stat hs;
        if (stat(path, &hs) == 0 && (st = me_history_read(&old, path, err))) return st; /* damaged: say so */
        r->history_missing = stat(path, &hs) != 0;
        if (stat(path, &hs) == 0) {
            if ((st = me_history_bind(&old, &r->model.params, err))) {
                me_history_free(&old);
                return me_error_prefix(err, "%s", path);
            }
            /* a finished shorter or interrupted run snapshotted its last step; off the history_every
             * grid that snapshot is not one an uninterrupted run takes (save_all takes it again if
             * this run ends there) */
            int64_t keep = r->state.step;
            if (keep > 0 && keep % r->cfg.log.history_every != 0) keep--;
            me_history_truncate(&old, keep);
            me_history_free(&r->hist);
            r->hist = old;
        }
    }
    {   /* the history file names its run: the config as a checkpoint stores it */
        char *text = NULL;
        if ((st = me_config_to_string(c, ME_KEY_RUN, &text, err))) return st;
        st = me_history_set_config(&r->hist, text, err);
        free(text);
        if (st) return st;
    }
    if ((st = me_metrics_log_init(&r->metrics, err))) return st;
    if (resume) {
        join(path, sizeof path, r->dir, "metrics.csv");
        if ((st = reload_metrics(&r->metrics, path, r->state.step, r->cfg.train.eval_every, err))) return st;
    }
    return ME_OK;
}

/* Rank 0, once every rank has set up: the old run's files go (--force), the directory and config.ini
 * come. */
static me_status start_files(run *r, int resume, me_error *err) {
    me_status st;
    char path[ME_PATH_MAX + 64];
    const me_config *c = &r->cfg;
    if (r->replace && (st = remove_run_files(r->dir, err))) return st;
    if (!resume && (st = me_file_mkdir_p(r->dir, err))) return st;
    /* the resolved config, every key written out */
    join(path, sizeof path, r->dir, "config.ini");
    char *text = NULL;
    if ((st = me_config_to_string(c, 0, &text, err))) return st;
    st = me_file_write_atomic(path, text, strlen(text), err);
    free(text);
    return st;
}

/* Ranks above 0 take rank 0's parameters, optimizer state and training state: rank 0 alone may have
 * read them from a checkpoint, and copies that start identical stay identical. */
static me_status share_state(run *r, me_error *err) {
    me_dist *d = r->dist;
    const me_dist_ops *o = d->ops;
    size_t bytes = r->model.params.total * sizeof(float);
    me_status st;
    if (r->rank == 0)
        me_sampler_get_state(&r->sampler, &r->state.sampler_seed, &r->state.sampler_epoch, &r->state.sampler_pos);
    if ((st = o->bcast(d->impl, r->model.params.data, bytes, 0, err)) ||
        (st = o->bcast(d->impl, r->optim.m, bytes, 0, err)) ||
        (r->optim.v && (st = o->bcast(d->impl, r->optim.v, bytes, 0, err))) ||
        (st = o->bcast(d->impl, &r->optim.step, sizeof r->optim.step, 0, err)) ||
        (st = o->bcast(d->impl, &r->state, sizeof r->state, 0, err)))
        return st;
    if (r->rank == 0) return ME_OK;
    return me_sampler_set_state(&r->sampler, r->state.sampler_seed, r->state.sampler_epoch, r->state.sampler_pos, err);
}

/* Every ME_DIST_CHECK_EVERY steps and at every save, the ranks compare checksums of their parameters and
 * optimizer state: a copy that drifted (a different library on one node, a hardware fault) stops the
 * run instead of silently training N different models. */
#define ME_DIST_CHECK_EVERY 100

static me_status check_replicas(run *r, me_error *err) {
    size_t n = r->model.params.total;
    uint64_t h = me_dist_hash(ME_DIST_HASH_INIT, r->model.params.data, n);
    h = me_dist_hash(h, r->optim.m, n);
    if (r->optim.v) h = me_dist_hash(h, r->optim.v, n);
    char what[64];
    snprintf(what, sizeof what, "step %" PRId64 ": parameters and optimizer state", r->state.step);
    return me_dist_check_same(r->dist, h, what, err);
}

/* Forward and backward of examples idx[lo, hi) of the step's batch on model m (batch buffers of its
 * own): the gradient of (their summed loss / the whole batch's `targets`) into m's gradient block.
 * Returns their summed loss. */
static double shard_pass(run *r, me_model *m, long step, size_t lo, size_t hi, size_t targets, int32_t *tokens,
                         uint8_t *pad, int32_t *tgt) {
    if (hi <= lo) return 0.0;
    size_t s = me_dataset_batch(&r->train, r->idx + lo, hi - lo, tokens, pad, tgt);
    me_dropout_key key = {.step = (uint64_t)step, .example0 = lo};
    memcpy(key.key, r->state.rng.s, sizeof key.key);
    me_model_forward(m, tokens, pad, tgt, (int)(hi - lo), (int)s, 1, &key, NULL);
    me_model_backward_shard(m, targets);
    return m->loss_sum;
}

/* What a thread shard's pass reads (me_shards_step). */
typedef struct {
    run *r;
    long step;
    int b;
    size_t targets;
} rep_ctx;

/* Thread shard t of this process's shard: examples split among all size * R shards of the batch. */
static double rep_pass(void *ctx, int t) {
    const rep_ctx *c = ctx;
    run *r = c->r;
    size_t per = (size_t)r->rep_cap * (size_t)r->max_s, lo, hi;
    me_shard_range((size_t)c->b, r->size * r->n_reps, r->rank * r->n_reps + t, &lo, &hi);
    return shard_pass(r, &r->reps[t], c->step, lo, hi, c->targets, r->rep_tokens + (size_t)t * per,
                      r->rep_pad + (size_t)t * per, r->rep_targets + (size_t)t * per);
}

/* One step's forward and backward on this process's shard of the batch idx[b]: the gradient of
 * (the shard's summed loss / the whole batch's target count) in the gradient block, summed over the
 * group. *loss_sum gets the shard's summed loss, *targets the whole batch's count. */
static me_status shard_step(run *r, long step, int b, double *loss_sum, size_t *targets, me_error *err) {
    me_params *p = &r->model.params;
    me_dist *d = r->size > 1 ? r->dist : NULL;
    size_t lo, hi;
    me_shard_range((size_t)b, r->size, r->rank, &lo, &hi);
    *targets = me_dataset_count_targets(&r->train, r->idx, (size_t)b);
    if (!r->n_reps) me_params_zero_grad(p); /* thread shards overwrite the whole block with their sum */
    me_status st;
    if (d && (st = d->ops->grad_begin(d->impl, p->grad, p->total, err))) return st;
    if (r->n_reps) {
        rep_ctx c = {r, step, b, *targets};
        *loss_sum = me_shards_step(p, r->rep_params, r->n_reps, rep_pass, &c, r->rep_loss);
    } else
        *loss_sum = shard_pass(r, &r->model, step, lo, hi, *targets, r->tokens, r->pad, r->targets);
    return d ? d->ops->grad_finish(d->impl, err) : ME_OK;
}

me_status me_train_run(const me_config *cfg, int resume, int force, const me_train_hooks *hooks,
                       me_train_result *res, me_error *err) {
    run *r = calloc(1, sizeof *r);
    if (!r) return me_error_set(err, ME_ERR_NOMEM, "out of memory");
    r->cfg = *cfg;
    me_config_absolute_paths(&r->cfg);
    r->dist = hooks ? hooks->dist : NULL;
    r->rank = r->dist ? r->dist->rank : 0;
    r->size = r->dist ? r->dist->size : 1;
    me_dist *d = r->size > 1 ? r->dist : NULL;
    int rank0 = r->rank == 0;
    /* rank 0 alone prints (through the hooks) and writes files */
    const me_train_hooks *shown = rank0 ? hooks : NULL;
    snprintf(r->dir, sizeof r->dir, "%s", cfg->log.out_dir);
    res->steps_done = 0;
    res->valid_loss = res->valid_acc = res->valid_seq_acc = NAN;
    me_status st = rank0 ? prepare_dir(r, resume, force, err) : ME_OK;
    if (!st) st = setup(r, resume, err);
    /* every rank has loaded its data and built its model, or the run stops everywhere */
    if ((st = me_dist_agree(d, st, NULL, err))) goto done;
    if (d && (st = share_state(r, err))) goto done;
    const me_train_config *tc = &r->cfg.train;
    me_train_progress pr = {0};
    pr.steps = tc->steps;
    pr.start_step = r->state.step;
    pr.valid_loss = pr.valid_acc = pr.valid_seq_acc = NAN;
    pr.valid_step = -1;
    char note[2 * ME_PATH_MAX + 200];
    r->state.threads = me_ops_threads();
    r->state.ranks = r->size;
    if (shown && shown->note && resume && r->resumed_threads &&
        (r->resumed_threads != r->state.threads || (r->resumed_ranks ? r->resumed_ranks : 1) != r->size)) {
        int was_ranks = r->resumed_ranks ? r->resumed_ranks : 1;
        if (was_ranks == 1 && r->size == 1)
            snprintf(note, sizeof note, "warning: the checkpoint was trained with %d threads, this run uses %d: the "
                     "result can differ in the last bits from an uninterrupted run (set train.threads = %d to match)",
                     r->resumed_threads, r->state.threads, r->resumed_threads);
        else
            snprintf(note, sizeof note, "warning: the checkpoint was trained with %d process%s x %d thread%s, this "
                     "run uses %d x %d: gradients are summed in another order, so the result can differ in the last "
                     "bits from an uninterrupted run (the same processes and threads reproduce it exactly)",
                     was_ranks, was_ranks == 1 ? "" : "es", r->resumed_threads, r->resumed_threads == 1 ? "" : "s",
                     r->size, r->state.threads);
        shown->note(shown->user, note);
    }
    if (shown && shown->note && resume && r->history_missing && r->state.step > 0) {
        snprintf(note, sizeof note, "warning: %s has no history.safetensors; the gamma/beta history starts afresh "
                 "at step %" PRId64 " (step 0 is lost)", r->dir, r->state.step);
        shown->note(shown->user, note);
    }
    if (shown && shown->note) {
        if (resume)
            snprintf(note, sizeof note, "resuming %s from step %" PRId64 " to %ld", r->dir, r->state.step, tc->steps);
        else
            snprintf(note, sizeof note, "training %s -> %s, %ld steps (seed %llu)",
                     r->cfg.path[0] ? r->cfg.path : "(no file)", r->dir, tc->steps, (unsigned long long)tc->seed);
        shown->note(shown->user, note);
    }
    if (rank0) st = start_files(r, resume, err);
    /* step 0: the initial values, on disk before the first update */
    if (rank0 && !st && !resume) st = save_all(r, 0, err);
    if ((st = me_dist_agree(d, st, NULL, err))) goto done;
    if (d) {
        r->model.enc.ready = me_dist_grads_ready;
        r->model.enc.ready_ctx = d;
    }
    double t0 = me_now_s(), t_last = t0;
    int b = tc->batch_size, reached = 0;
    /* alone, a signal is seen at the top of the next step; in a group, the ranks agree after every
     * step's gradient sum whether any of them was asked to stop, so all stop after the same step.
     * pending: a failure of rank 0's file writes, told to the others at the next agreement. */
    int stopping = 0;
    me_status pending = ME_OK;
    while (r->state.step < tc->steps && !reached) {
        if (d ? stopping : hooks && hooks->stop && *hooks->stop) {
            /* collective calls first, each with the same outcome on every rank; then rank 0's save */
            if (d && (st = check_replicas(r, err))) goto done;
            st = rank0 ? save_all(r, 1, err) : ME_OK;
            if ((st = me_dist_agree(d, st, NULL, err))) goto done;
            st = me_dist_fail_together(d, me_error_set(err, ME_ERR_INTERRUPTED, "interrupted at step %" PRId64 "; "
                                                        "saved %s (resume with --resume %s)", r->state.step, r->dir,
                                                        r->dir));
            goto done;
        }
        long step = (long)r->state.step; /* 0-based index of this update */
        me_sampler_next_batch(&r->sampler, r->idx, (size_t)b);
        double shard_loss, loss;
        size_t targets;
        st = shard_step(r, step, b, &shard_loss, &targets, err);
        if (d) {
            int stop = st == ME_OK && hooks && hooks->stop && *hooks->stop;
            if ((st = me_dist_agree(d, st ? st : pending, &stop, err))) goto done;
            stopping = stop;
            if ((st = me_dist_sum(d, &shard_loss, 1, &loss, err))) goto done;
        } else {
            if (st) goto done;
            loss = shard_loss;
        }
        loss = targets ? loss / (double)targets : NAN;
        double gnorm = me_clip_grad_norm(&r->model.params, tc->clip_grad_norm);
        if (!isfinite(loss) || !isfinite(gnorm)) {
            /* every rank sees the same summed loss and gradient: all stop here, rank 0 reports */
            char path[ME_PATH_MAX + 64];
            join(path, sizeof path, r->dir, "metrics.csv");
            if (rank0) me_metrics_log_write(&r->metrics, path, NULL);
            st = me_dist_fail_together(d, me_error_set(err, ME_ERR_NUMERIC,
                              "step %ld: %s is %g; training stopped, the last good checkpoint in %s is kept "
                              "(try a lower train.lr or set train.clip_grad_norm)",
                              step + 1, isfinite(loss) ? "gradient norm" : "loss", isfinite(loss) ? gnorm : loss,
                              r->dir));
            goto done;
        }
        double lr = me_schedule_lr(tc, r->cfg.model.d_model, step);
        me_optim_step(&r->optim, &r->model.params, lr);
        r->state.step++;
        size_t real_tokens = 0;
        for (int i = 0; i < b; i++) real_tokens += me_dataset_len(&r->train, r->idx[i]);
        double t = me_now_s();
        pr.step = (long)r->state.step;
        pr.loss = loss;
        pr.lr = lr;
        pr.grad_norm = gnorm;
        pr.tokens_per_s = t > t_last ? (double)real_tokens / (t - t_last) : 0.0;
        pr.evaluated = 0;
        int last = r->state.step == tc->steps;
        int evaluating = r->has_valid && ((tc->eval_every > 0 && r->state.step % tc->eval_every == 0) || last);
        if (evaluating && rank0 && !pending) {
            /* rank 0 evaluates alone (measured: see the README), the others go on to the next step's
             * gradient sum and wait there */
            me_eval_result ev;
            pending = me_evaluate(&r->model, &r->valid, r->model.max_b, &ev, err);
            if (pending && !d) {
                st = pending;
                goto done;
            }
            pr.valid_loss = ev.loss;
            pr.valid_acc = ev.accuracy;
            pr.valid_seq_acc = ev.seq_accuracy;
            pr.valid_step = (long)r->state.step;
            pr.evaluated = !pending;
            reached = !pending && tc->stop_at_accuracy > 0.0 && ev.accuracy >= tc->stop_at_accuracy;
        }
        if (d && evaluating && tc->stop_at_accuracy > 0.0) { /* rank 0's finding, for every rank */
            double mine = reached, any;
            if ((st = me_dist_sum(d, &mine, 1, &any, err))) goto done;
            reached = any > 0.0;
        }
        int save = !last && !reached && r->cfg.log.checkpoint_every > 0 &&
                   r->state.step % r->cfg.log.checkpoint_every == 0;
        if (d && (save || last || reached || r->state.step % ME_DIST_CHECK_EVERY == 0) &&
            (st = check_replicas(r, err)))
            goto done;
        if (rank0 && !pending) {
            me_metrics_row row = {r->state.step, loss, lr, gnorm, pr.tokens_per_s, pr.evaluated ? pr.valid_loss : NAN,
                                  pr.evaluated ? pr.valid_acc : NAN};
            pending = me_metrics_log_append(&r->metrics, &row, err);
            if (!pending && tc->steps > 0 && r->cfg.log.history_every > 0 &&
                r->state.step % r->cfg.log.history_every == 0)
                pending = me_history_record(&r->hist, &r->model.params, r->state.step, err);
            pr.elapsed_s = t - t0;
            if (!pending && shown && shown->progress) shown->progress(shown->user, &pr);
            if (!pending && save) pending = save_all(r, 0, err);
            if (pending && !d) {
                st = pending;
                goto done;
            }
        }
        t_last = me_now_s(); /* tokens/s times the step itself, not evaluation or saving */
    }
    if (resume && pr.step == 0 && shown && shown->note) {
        snprintf(note, sizeof note, "%s is already at step %" PRId64 " (train.steps = %ld): nothing to do", r->dir,
                 r->state.step, tc->steps);
        shown->note(shown->user, note);
    }
    if (reached && shown && shown->note) {
        snprintf(note, sizeof note, "validation accuracy %.2f%% reached train.stop_at_accuracy = %g at step %" PRId64
                 ": stopping", 100.0 * pr.valid_acc, tc->stop_at_accuracy, r->state.step);
        shown->note(shown->user, note);
    }
    st = pending;
    /* stopped early: the history ends at the checkpoint's values */
    if (rank0 && !st) st = save_all(r, reached, err);
    st = me_dist_agree(d, st, NULL, err);
    res->valid_loss = pr.valid_loss;
    res->valid_acc = pr.valid_acc;
    res->valid_seq_acc = pr.valid_seq_acc;
done:
    res->steps_done = (long)r->state.step;
    run_free(r);
    free(r);
    return st;
}
