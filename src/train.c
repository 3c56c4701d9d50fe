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
    int32_t *tokens, *targets;
    uint8_t *pad;
    size_t *idx;
    int replace;          /* --force over a non-empty run directory */
    int resumed_threads;  /* thread count stored in the checkpoint resumed from (0: unknown) */
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
    if (resume) { /* the checkpoint's architecture must be the config's, before anything is loaded */
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
    /* independent streams for dropout and data order, both derived from the seed */
    me_rng_seed(&r->state.rng, c->train.seed ^ 0xD1B54A32D192ED03ull);
    int max_s = r->train.max_len_seen;
    if (r->has_valid && r->valid.max_len_seen > max_s) max_s = r->valid.max_len_seen;
    int b = c->train.batch_size;
    if ((st = me_model_alloc(&r->model, b, max_s, err))) return st;
    if ((st = me_optim_init(&r->optim, &r->model.params, &c->train, err))) return st;
    if ((st = me_sampler_init(&r->sampler, r->train.n, c->train.seed + 1, err))) return st;
    if ((st = me_history_init(&r->hist, &r->model.params, err))) return st;
    size_t cap = (size_t)b * (size_t)max_s;
    r->tokens = malloc(cap * sizeof *r->tokens);
    r->targets = malloc(cap * sizeof *r->targets);
    r->pad = malloc(cap);
    r->idx = malloc((size_t)b * sizeof *r->idx);
    if (!r->tokens || !r->targets || !r->pad || !r->idx)
        return me_error_set(err, ME_ERR_NOMEM, "out of memory for batches of %d x %d", b, max_s);
    char path[ME_PATH_MAX + 64];
    if (resume) {
        join(path, sizeof path, r->dir, "checkpoint.safetensors");
        if ((st = me_checkpoint_load(path, &r->model.params, &r->optim, &r->state, err))) return st;
        r->resumed_threads = r->state.threads;
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

me_status me_train_run(const me_config *cfg, int resume, int force, const me_train_hooks *hooks,
                       me_train_result *res, me_error *err) {
    run *r = calloc(1, sizeof *r);
    if (!r) return me_error_set(err, ME_ERR_NOMEM, "out of memory");
    r->cfg = *cfg;
    me_config_absolute_paths(&r->cfg);
    snprintf(r->dir, sizeof r->dir, "%s", cfg->log.out_dir);
    res->steps_done = 0;
    res->valid_loss = res->valid_acc = res->valid_seq_acc = NAN;
    me_status st = prepare_dir(r, resume, force, err);
    if (!st) st = setup(r, resume, err);
    if (st) goto done;
    const me_train_config *tc = &r->cfg.train;
    me_train_progress pr = {0};
    pr.steps = tc->steps;
    pr.start_step = r->state.step;
    pr.valid_loss = pr.valid_acc = pr.valid_seq_acc = NAN;
    pr.valid_step = -1;
    char note[2 * ME_PATH_MAX + 200];
    r->state.threads = me_ops_threads();
    if (hooks && hooks->note && resume && r->resumed_threads && r->resumed_threads != r->state.threads) {
        snprintf(note, sizeof note, "warning: the checkpoint was trained with %d threads, this run uses %d: the "
                 "result can differ in the last bits from an uninterrupted run (set train.threads = %d to match)",
                 r->resumed_threads, r->state.threads, r->resumed_threads);
        hooks->note(hooks->user, note);
    }
    if (hooks && hooks->note && resume && r->history_missing && r->state.step > 0) {
        snprintf(note, sizeof note, "warning: %s has no history.safetensors; the gamma/beta history starts afresh "
                 "at step %" PRId64 " (step 0 is lost)", r->dir, r->state.step);
        hooks->note(hooks->user, note);
    }
    if (hooks && hooks->note) {
        if (resume)
            snprintf(note, sizeof note, "resuming %s from step %" PRId64 " to %ld", r->dir, r->state.step, tc->steps);
        else
            snprintf(note, sizeof note, "training %s -> %s, %ld steps (seed %llu)",
                     r->cfg.path[0] ? r->cfg.path : "(no file)", r->dir, tc->steps, (unsigned long long)tc->seed);
        hooks->note(hooks->user, note);
    }
    if (!resume) {
        /* step 0: the initial values, on disk before the first update */
        if ((st = save_all(r, 0, err))) goto done;
    }
    double t0 = me_now_s(), t_last = t0;
    int b = tc->batch_size, reached = 0;
    while (r->state.step < tc->steps && !reached) {
        if (hooks && hooks->stop && *hooks->stop) {
            st = save_all(r, 1, err);
            if (!st) st = me_error_set(err, ME_ERR_INTERRUPTED, "interrupted at step %" PRId64 "; saved %s (resume with "
                                       "--resume %s)", r->state.step, r->dir, r->dir);
            goto done;
        }
        long step = (long)r->state.step; /* 0-based index of this update */
        me_sampler_next_batch(&r->sampler, r->idx, (size_t)b);
        size_t s = me_dataset_batch(&r->train, r->idx, (size_t)b, r->tokens, r->pad, r->targets);
        me_params_zero_grad(&r->model.params);
        double loss = me_model_forward(&r->model, r->tokens, r->pad, r->targets, b, (int)s, 1, &r->state.rng, NULL);
        me_model_backward(&r->model);
        double gnorm = me_clip_grad_norm(&r->model.params, tc->clip_grad_norm);
        if (!isfinite(loss) || !isfinite(gnorm)) {
            char path[ME_PATH_MAX + 64];
            join(path, sizeof path, r->dir, "metrics.csv");
            me_metrics_log_write(&r->metrics, path, NULL);
            st = me_error_set(err, ME_ERR_NUMERIC,
                              "step %ld: %s is %g; training stopped, the last good checkpoint in %s is kept "
                              "(try a lower train.lr or set train.clip_grad_norm)",
                              step + 1, isfinite(loss) ? "gradient norm" : "loss", isfinite(loss) ? gnorm : loss,
                              r->dir);
            goto done;
        }
        double lr = me_schedule_lr(tc, r->cfg.model.d_model, step);
        me_optim_step(&r->optim, &r->model.params, lr);
        r->state.step++;
        size_t real_tokens = 0;
        for (size_t i = 0; i < (size_t)b * s; i++) real_tokens += !r->pad[i];
        double t = me_now_s();
        pr.step = (long)r->state.step;
        pr.loss = loss;
        pr.lr = lr;
        pr.grad_norm = gnorm;
        pr.tokens_per_s = t > t_last ? (double)real_tokens / (t - t_last) : 0.0;
        pr.evaluated = 0;
        int last = r->state.step == tc->steps;
        if (r->has_valid && ((tc->eval_every > 0 && r->state.step % tc->eval_every == 0) || last)) {
            me_eval_result ev;
            if ((st = me_evaluate(&r->model, &r->valid, b, &ev, err))) goto done;
            pr.valid_loss = ev.loss;
            pr.valid_acc = ev.accuracy;
            pr.valid_seq_acc = ev.seq_accuracy;
            pr.valid_step = (long)r->state.step;
            pr.evaluated = 1;
            reached = tc->stop_at_accuracy > 0.0 && ev.accuracy >= tc->stop_at_accuracy;
        }
        me_metrics_row row = {r->state.step, loss, lr, gnorm, pr.tokens_per_s, pr.evaluated ? pr.valid_loss : NAN,
                              pr.evaluated ? pr.valid_acc : NAN};
        if ((st = me_metrics_log_append(&r->metrics, &row, err))) goto done;
        if (tc->steps > 0 && r->cfg.log.history_every > 0 && r->state.step % r->cfg.log.history_every == 0 &&
            (st = me_history_record(&r->hist, &r->model.params, r->state.step, err)))
            goto done;
        pr.elapsed_s = t - t0;
        if (hooks && hooks->progress) hooks->progress(hooks->user, &pr);
        if (!last && !reached && r->cfg.log.checkpoint_every > 0 && r->state.step % r->cfg.log.checkpoint_every == 0 &&
            (st = save_all(r, 0, err)))
            goto done;
        t_last = me_now_s(); /* tokens/s times the step itself, not evaluation or saving */
    }
    if (resume && pr.step == 0 && hooks && hooks->note) {
        snprintf(note, sizeof note, "%s is already at step %" PRId64 " (train.steps = %ld): nothing to do", r->dir,
                 r->state.step, tc->steps);
        hooks->note(hooks->user, note);
    }
    if (reached && hooks && hooks->note) {
        snprintf(note, sizeof note, "validation accuracy %.2f%% reached train.stop_at_accuracy = %g at step %" PRId64
                 ": stopping", 100.0 * pr.valid_acc, tc->stop_at_accuracy, r->state.step);
        hooks->note(hooks->user, note);
    }
    st = save_all(r, reached, err); /* stopped early: the history ends at the checkpoint's values */
    res->valid_loss = pr.valid_loss;
    res->valid_acc = pr.valid_acc;
    res->valid_seq_acc = pr.valid_seq_acc;
done:
    res->steps_done = (long)r->state.step;
    run_free(r);
    free(r);
    return st;
}
