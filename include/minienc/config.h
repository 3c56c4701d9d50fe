/* Run configuration: INI files (parsed with inih) plus `--set section.key=value` overrides.
 *
 * Sections [model], [data], [train] and [log]. Every key, with its type, range, default and flags, is
 * one row of the KEYS table in src/config.c; me_config_defaults, the parser, the range checks, the
 * writer and the checks a checkpoint makes all derive from it (the README's Configuration table shows
 * the same defaults, and tests/test_config.c checks that it does). Paths in a file are relative to its
 * folder; paths given with --set, to the working directory.
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
    double stop_at_accuracy; /* 0: off; else stop at the first evaluation whose accuracy reaches it */
    int threads; /* 0: all cores */
    int thread_shards; /* > 1: each process splits its shard of a batch into this many, one thread each;
                        * 1: no shards (kernels split); 0: auto (me_train_thread_shards) */
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

/* Flags of a key in the KEYS table. */
enum {
    ME_KEY_ARCH = 1u << 0, /* the model's tensors or computation depend on it, so a checkpoint and the
                              config that loads it must agree (every model.* key but dropout, and
                              data.task) */
    ME_KEY_RUN = 1u << 1,  /* where the run lives (log.out_dir): left out of a checkpoint's stored
                              config, made absolute even though it need not exist yet */
    ME_KEY_MACHINE = 1u << 2 /* how this machine runs it, not what it computes (train.threads): a sweep
                                gives each of its runs its own value */
};

/* Fills every field with its default (the KEYS table's). */
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

/* Writes the resolved config as INI (every key, defaults included) to f. Numbers are written in the
 * shortest form that reads back to the same float or double, so loading that text gives back an
 * identical config. Returns ME_ERR_IO on a write error, ME_ERR_CONFIG for a path INI cannot hold. */
me_status me_config_write(const me_config *c, FILE *f, me_error *err);

/* Same, into a malloc'd NUL-terminated string (*out, caller frees); keys with any of the flags in
 * omit (e.g. ME_KEY_RUN) are written as not set. */
me_status me_config_to_string(const me_config *c, unsigned omit, char **out, me_error *err);

/* A key's value as me_config_write writes it ("gelu", "true", "1e-05", a path; an out-of-range enum
 * or boolean as its number) into buf. Returns buf ("" for an unknown key). */
char *me_config_value_string(const me_config *c, const char *key, char *buf, size_t cap);

/* The name the parser gives value v of an enum key: me_config_choice_name("train.optimizer", 1) is
 * "sgd". NULL when key is not an enum key or v is out of range. */
const char *me_config_choice_name(const char *key, int v);

/* The first key, in table order, among those with any of the given flags whose values differ
 * between a and b; NULL when they all agree. */
const char *me_config_first_difference(const me_config *a, const me_config *b, unsigned flags);

/* The same over every key that has none of the flags in skip: me_config_first_difference_except(a, b,
 * ME_KEY_RUN | ME_KEY_MACHINE) is NULL when a and b train the same run. */
const char *me_config_first_difference_except(const me_config *a, const me_config *b, unsigned skip);

/* Key i of the table, in table order ("model.d_model", ...), and its ME_KEY_* flags in *flags (may be
 * NULL); NULL when i is out of range. */
const char *me_config_key_at(int i, unsigned *flags);

/* Makes relative paths absolute against the working directory, so that the written config loads the
 * same from any folder: data files (which exist) through realpath, ME_KEY_RUN paths (which may not
 * exist yet) by joining. A path that would not fit is left as it is. */
void me_config_absolute_paths(me_config *c);

/* Parses INI text (e.g. a checkpoint's stored config) as if it were the file `name`. */
me_status me_config_load_string(me_config *c, const char *text, const char *name, me_error *err);

#endif
