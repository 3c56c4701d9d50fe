/* Run configuration: INI files (parsed with inih) plus `--set section.key=value` overrides.
 *
 * Sections and keys (defaults in brackets; PyTorch's where one exists):
 *   [model] d_model, n_heads, d_ff [2048], n_layers [1], activation relu|gelu [relu],
 *           norm_first [false], final_norm [false], layer_norm_eps [1e-5], dropout [0.1],
 *           vocab_size [0 = encoder only], n_classes [0 = vocab_size], max_len [64],
 *           positional learned|sinusoidal [learned]
 *   [data]  task tag|classify [tag], train, valid  (paths in a file are relative to its folder; paths
 *           given with --set, to the working directory)
 *   [train] steps [1000], batch_size [32], optimizer adamw|sgd [adamw], lr [1e-3], beta1 [0.9],
 *           beta2 [0.999], eps [1e-8], weight_decay [0.01], decay_norm_and_bias [false],
 *           momentum [0], schedule constant|cosine|noam [constant], warmup [0],
 *           clip_grad_norm [0 = off], seed [0], eval_every [100], threads [0 = all cores]
 *   [log]   out_dir [runs/NAME where NAME is the config file's base name, or runs/default],
 *           history_every [10], checkpoint_every [0 = only at the end]
 *
 * Each key remembers where its value came from ("configs/x.ini:7" or "--set model.d_model=64" or
 * "default"), so that later checks can name the file, line and key. */
#ifndef MINIENC_CONFIG_H
#define MINIENC_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "minienc/status.h"

#define ME_PATH_MAX 1024
#define ME_ORIGIN_MAX 1200

typedef enum { ME_ACT_RELU = 0, ME_ACT_GELU = 1 } me_activation;
typedef enum { ME_POS_LEARNED = 0, ME_POS_SINUSOIDAL = 1 } me_positional;
typedef enum { ME_TASK_TAG = 0, ME_TASK_CLASSIFY = 1 } me_task;
typedef enum { ME_OPT_ADAMW = 0, ME_OPT_SGD = 1 } me_optimizer;
typedef enum { ME_SCHED_CONSTANT = 0, ME_SCHED_COSINE = 1, ME_SCHED_NOAM = 2 } me_schedule;

typedef struct {
    int d_model, n_heads, d_ff, n_layers;
    me_activation activation;
    int norm_first, final_norm; /* booleans */
    float layer_norm_eps;
    float dropout;
    int vocab_size; /* 0: encoder stack only (no embedding, no head) */
    int n_classes;  /* 0 in the file means "same as vocab_size"; resolved by me_config_validate */
    int max_len;
    me_positional positional;
} me_model_config;

typedef struct {
    me_task task;
    char train[ME_PATH_MAX]; /* resolved against the config file's folder; "" if unset */
    char valid[ME_PATH_MAX];
} me_data_config;

typedef struct {
    long steps;
    int batch_size;
    me_optimizer optimizer;
    double lr, beta1, beta2, eps, weight_decay; /* double, as PyTorch keeps them */
    int decay_norm_and_bias; /* boolean: apply weight decay to LayerNorm gamma/beta and biases too */
    double momentum;
    me_schedule schedule;
    int warmup;
    double clip_grad_norm; /* 0: off */
    uint64_t seed;
    int eval_every;
    int threads; /* 0: all cores */
} me_train_config;

typedef struct {
    char out_dir[ME_PATH_MAX];
    int history_every;
    int checkpoint_every; /* 0: only at the end */
} me_log_config;

typedef struct {
    char key[48];                /* "model.d_model" */
    char origin[ME_ORIGIN_MAX];  /* "configs/x.ini:7", "--set model.d_model=64" or "default" */
} me_config_origin_entry;

typedef struct {
    me_model_config model;
    me_data_config data;
    me_train_config train;
    me_log_config log;
    char path[ME_PATH_MAX]; /* the config file as given, "" if none */
    char dir[ME_PATH_MAX];  /* its folder, used to resolve relative paths ("." if none) */
    me_config_origin_entry origins[64];
    int n_origins;
} me_config;

/* Fills every field with its default. */
void me_config_defaults(me_config *c);

/* Loads an INI file over the current values (call me_config_defaults first). Refuses an unknown
 * section or key (naming the nearest known one), a malformed or out-of-range value, with
 * "FILE:LINE: key 'x': what is wrong, what is expected". Returns ME_ERR_CONFIG (ME_ERR_IO if the file
 * cannot be read). */
me_status me_config_load(me_config *c, const char *path, me_error *err);

/* Applies one "section.key=value" override with the same checks. */
me_status me_config_set(me_config *c, const char *assignment, me_error *err);

/* Cross-field checks after all loading and overrides: d_model > 0, n_heads > 0, d_model divisible by
 * n_heads, n_classes resolved from vocab_size, etc. Names the origin of the offending key. */
me_status me_config_validate(me_config *c, me_error *err);

/* Where "section.key" got its value: a file:line, a --set, or "default". Never NULL. */
const char *me_config_origin(const me_config *c, const char *key);

/* Writes the resolved config as INI (every key, defaults included) to f. Loading that text gives
 * back an identical config. Returns ME_ERR_IO on a write error. */
me_status me_config_write(const me_config *c, FILE *f, me_error *err);

/* Same, into a malloc'd NUL-terminated string (*out, caller frees). */
me_status me_config_to_string(const me_config *c, char **out, me_error *err);

/* Parses INI text (e.g. a checkpoint's stored config) as if it were the file `name`. */
me_status me_config_load_string(me_config *c, const char *text, const char *name, me_error *err);

#endif
