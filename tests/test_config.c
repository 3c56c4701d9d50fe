/* Tests for the config module: defaults, parsing, every refusal kind, --set, validation, path
 * resolution and the write -> load round trip. Expected values are written out literally. */
#include "test_util.h"

#include <float.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "minienc/config.h"
#include "minienc/rng.h"

/* Fails unless haystack contains needle, printing both. */
static void check_contains(const char *haystack, const char *needle, int line) {
    if (!strstr(haystack, needle)) {
        print_error("line %d: message \"%s\" does not contain \"%s\"\n", line, haystack, needle);
        fail();
    }
}
#define assert_msg_contains(msg, needle) check_contains((msg), (needle), __LINE__)

typedef struct {
    char dir[512];
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    me_make_temp_dir(fx->dir, sizeof fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    me_remove_tree(fx->dir);
    free(fx);
    return 0;
}

/* Writes text to DIR/name and returns the path in a static-free caller buffer. */
static void write_file(const fixture *fx, const char *name, const char *text, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", fx->dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Loads text as a file and expects ME_ERR_CONFIG with a message containing every needle (NULL-ended). */
static void expect_load_refused(const fixture *fx, const char *text, const char *const *needles) {
    char path[1024];
    write_file(fx, "bad.ini", text, path, sizeof path);
    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    me_status st = me_config_load(&c, path, &err);
    if (st != ME_ERR_CONFIG) print_error("status %d for:\n%s\nmessage: %s\n", (int)st, text, err.msg);
    assert_int_equal(st, ME_ERR_CONFIG);
    assert_int_equal(err.status, ME_ERR_CONFIG);
    char where_file[1100];
    snprintf(where_file, sizeof where_file, "%s:", path);
    assert_msg_contains(err.msg, where_file);
    for (int i = 0; needles[i]; i++) assert_msg_contains(err.msg, needles[i]);
}

#define REFUSE(text, ...)                                                                                        \
    do {                                                                                                         \
        const char *const needles_[] = {__VA_ARGS__, NULL};                                                      \
        expect_load_refused(fx, (text), needles_);                                                               \
    } while (0)

static void assert_configs_equal(const me_config *a, const me_config *b) {
    assert_int_equal(a->model.d_model, b->model.d_model);
    assert_int_equal(a->model.n_heads, b->model.n_heads);
    assert_int_equal(a->model.d_ff, b->model.d_ff);
    assert_int_equal(a->model.n_layers, b->model.n_layers);
    assert_int_equal(a->model.activation, b->model.activation);
    assert_int_equal(a->model.norm_first, b->model.norm_first);
    assert_int_equal(a->model.final_norm, b->model.final_norm);
    assert_memory_equal(&a->model.layer_norm_eps, &b->model.layer_norm_eps, sizeof(float));
    assert_memory_equal(&a->model.dropout, &b->model.dropout, sizeof(float));
    assert_int_equal(a->model.vocab_size, b->model.vocab_size);
    assert_int_equal(a->model.n_classes, b->model.n_classes);
    assert_int_equal(a->model.max_len, b->model.max_len);
    assert_int_equal(a->model.positional, b->model.positional);
    assert_int_equal(a->data.task, b->data.task);
    assert_string_equal(a->data.train, b->data.train);
    assert_string_equal(a->data.valid, b->data.valid);
    assert_int_equal(a->train.steps, b->train.steps);
    assert_int_equal(a->train.batch_size, b->train.batch_size);
    assert_int_equal(a->train.optimizer, b->train.optimizer);
    assert_memory_equal(&a->train.lr, &b->train.lr, sizeof(double));
    assert_memory_equal(&a->train.beta1, &b->train.beta1, sizeof(double));
    assert_memory_equal(&a->train.beta2, &b->train.beta2, sizeof(double));
    assert_memory_equal(&a->train.eps, &b->train.eps, sizeof(double));
    assert_memory_equal(&a->train.weight_decay, &b->train.weight_decay, sizeof(double));
    assert_int_equal(a->train.decay_norm_and_bias, b->train.decay_norm_and_bias);
    assert_memory_equal(&a->train.momentum, &b->train.momentum, sizeof(double));
    assert_int_equal(a->train.schedule, b->train.schedule);
    assert_int_equal(a->train.warmup, b->train.warmup);
    assert_memory_equal(&a->train.clip_grad_norm, &b->train.clip_grad_norm, sizeof(double));
    assert_true(a->train.seed == b->train.seed);
    assert_int_equal(a->train.eval_every, b->train.eval_every);
    assert_memory_equal(&a->train.stop_at_accuracy, &b->train.stop_at_accuracy, sizeof(double));
    assert_int_equal(a->train.threads, b->train.threads);
    assert_int_equal(a->train.thread_shards, b->train.thread_shards);
    assert_string_equal(a->log.out_dir, b->log.out_dir);
    assert_int_equal(a->log.history_every, b->log.history_every);
    assert_int_equal(a->log.checkpoint_every, b->log.checkpoint_every);
}

/* ---- defaults and a full file ----------------------------------------------------------------- */

static void defaults_should_match_the_documented_values(void **state) {
    (void)state;
    me_config c;
    me_config_defaults(&c);
    assert_int_equal(c.model.d_model, 0);
    assert_int_equal(c.model.n_heads, 0);
    assert_int_equal(c.model.d_ff, 2048);
    assert_int_equal(c.model.n_layers, 1);
    assert_int_equal(c.model.activation, ME_ACT_RELU);
    assert_int_equal(c.model.norm_first, 0);
    assert_int_equal(c.model.final_norm, 0);
    assert_true(c.model.layer_norm_eps == 1e-5f);
    assert_true(c.model.dropout == 0.1f);
    assert_int_equal(c.model.vocab_size, 0);
    assert_int_equal(c.model.n_classes, 0);
    assert_int_equal(c.model.max_len, 64);
    assert_int_equal(c.model.positional, ME_POS_LEARNED);
    assert_int_equal(c.data.task, ME_TASK_TAG);
    assert_string_equal(c.data.train, "");
    assert_string_equal(c.data.valid, "");
    assert_int_equal(c.train.steps, 1000);
    assert_int_equal(c.train.batch_size, 32);
    assert_int_equal(c.train.optimizer, ME_OPT_ADAMW);
    assert_true(c.train.lr == 1e-3);
    assert_true(c.train.beta1 == 0.9);
    assert_true(c.train.beta2 == 0.999);
    assert_true(c.train.eps == 1e-8);
    assert_true(c.train.weight_decay == 0.01);
    assert_int_equal(c.train.decay_norm_and_bias, 0);
    assert_true(c.train.momentum == 0.0);
    assert_int_equal(c.train.schedule, ME_SCHED_CONSTANT);
    assert_int_equal(c.train.warmup, 0);
    assert_true(c.train.clip_grad_norm == 0.0);
    assert_true(c.train.seed == 0);
    assert_int_equal(c.train.eval_every, 100);
    assert_int_equal(c.train.threads, 0);
    assert_string_equal(c.log.out_dir, "runs/default");
    assert_int_equal(c.log.history_every, 10);
    assert_int_equal(c.log.checkpoint_every, 0);
    assert_string_equal(c.path, "");
    assert_string_equal(c.dir, ".");
    assert_string_equal(me_config_origin(&c, "model.d_ff"), "default");
}

static const char FULL_INI[] =
    "; a full configuration\n"
    "# with both comment styles\n"
    "[model]\n"
    "d_model = 64\n"
    "  n_heads = 4\n" /* indented keys are keys, not continuation lines */
    "  d_ff = 256   ; inline comment\n"
    "n_layers=3\n"
    "activation = gelu\n"
    "norm_first = yes\n"
    "final_norm = On\n"
    "layer_norm_eps = 1e-6\n"
    "dropout = 0\n"
    "vocab_size = 100\n"
    "n_classes = 7\n"
    "max_len = 128\n"
    "positional = sinusoidal\n"
    "\n"
    "[data]\n"
    "task = classify\n"
    "train = data/train.txt\r\n" /* CRLF line */
    "valid = /abs/valid.txt\n"
    "[train]\n"
    "steps = 5000000000\n"
    "batch_size = 8\n"
    "optimizer = sgd\n"
    "lr = 0.05\n"
    "beta1 = 0.8\n"
    "beta2 = 0.95\n"
    "eps = 1e-6\n"
    "weight_decay = 0\n"
    "decay_norm_and_bias = 1\n"
    "momentum = 0.9\n"
    "schedule = noam\n"
    "warmup = 400\n"
    "clip_grad_norm = 1.5\n"
    "seed = 18446744073709551615\n"
    "eval_every = 0\n"
    "threads = 2\n"
    "thread_shards = 3\n"
    "stop_at_accuracy = 0.75\n"
    "[log]\n"
    "out_dir = out\n"
    "history_every = 1\n"
    "checkpoint_every = 50\n";

static void load_should_parse_a_full_file_into_the_right_values(void **state) {
    fixture *fx = *state;
    char path[1024];
    write_file(fx, "full.ini", FULL_INI, path, sizeof path);
    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    me_status st = me_config_load(&c, path, &err);
    if (st != ME_OK) print_error("%s\n", err.msg);
    assert_int_equal(st, ME_OK);
    assert_int_equal(c.model.d_model, 64);
    assert_int_equal(c.model.n_heads, 4);
    assert_int_equal(c.model.d_ff, 256);
    assert_int_equal(c.model.n_layers, 3);
    assert_int_equal(c.model.activation, ME_ACT_GELU);
    assert_int_equal(c.model.norm_first, 1);
    assert_int_equal(c.model.final_norm, 1);
    assert_true(c.model.layer_norm_eps == 1e-6f);
    assert_true(c.model.dropout == 0.0f);
    assert_int_equal(c.model.vocab_size, 100);
    assert_int_equal(c.model.n_classes, 7);
    assert_int_equal(c.model.max_len, 128);
    assert_int_equal(c.model.positional, ME_POS_SINUSOIDAL);
    assert_int_equal(c.data.task, ME_TASK_CLASSIFY);
    char want[1100];
    snprintf(want, sizeof want, "%s/data/train.txt", fx->dir);
    assert_string_equal(c.data.train, want);
    assert_string_equal(c.data.valid, "/abs/valid.txt");
    assert_true(c.train.steps == 5000000000L);
    assert_int_equal(c.train.batch_size, 8);
    assert_int_equal(c.train.optimizer, ME_OPT_SGD);
    assert_true(c.train.lr == 0.05);
    assert_true(c.train.beta1 == 0.8);
    assert_true(c.train.beta2 == 0.95);
    assert_true(c.train.eps == 1e-6);
    assert_true(c.train.weight_decay == 0.0);
    assert_int_equal(c.train.decay_norm_and_bias, 1);
    assert_true(c.train.momentum == 0.9);
    assert_int_equal(c.train.schedule, ME_SCHED_NOAM);
    assert_int_equal(c.train.warmup, 400);
    assert_true(c.train.clip_grad_norm == 1.5);
    assert_true(c.train.seed == UINT64_MAX);
    assert_int_equal(c.train.eval_every, 0);
    assert_int_equal(c.train.threads, 2);
    assert_int_equal(c.train.thread_shards, 3);
    assert_true(c.train.stop_at_accuracy == 0.75);
    snprintf(want, sizeof want, "%s/out", fx->dir);
    assert_string_equal(c.log.out_dir, want);
    assert_int_equal(c.log.history_every, 1);
    assert_int_equal(c.log.checkpoint_every, 50);
    assert_string_equal(c.path, path);
    assert_string_equal(c.dir, fx->dir);

    /* Origins: file:line for what the file set, "default" for the rest. */
    char origin[1100];
    snprintf(origin, sizeof origin, "%s:5", path);
    assert_string_equal(me_config_origin(&c, "model.n_heads"), origin);
    snprintf(origin, sizeof origin, "%s:20", path);
    assert_string_equal(me_config_origin(&c, "data.train"), origin);
    assert_string_equal(me_config_origin(&c, "no.such_key"), "default");

    assert_int_equal(me_config_validate(&c, &err), ME_OK);
    assert_int_equal(c.model.n_classes, 7);
}

/* ---- refusals ---------------------------------------------------------------------------------- */

static void load_should_refuse_unknown_sections_and_keys_with_a_suggestion(void **state) {
    fixture *fx = *state;
    REFUSE("[model]\nd_model = 8\n[modle]\nn_heads = 2\n", "bad.ini:3: unknown section '[modle]'",
           "did you mean '[model]'?");
    /* An unknown section is refused even when it holds no keys. */
    REFUSE("[model]\nd_model = 8\n[trian]\n", "bad.ini:3: unknown section '[trian]', did you mean '[train]'?");
    REFUSE("[model]\nd_model = 8\nd_modle = 8\n",
           "bad.ini:3: unknown key 'model.d_modle', did you mean 'model.d_model'?");
    /* A key in the wrong section points at the section it belongs to. */
    REFUSE("[model]\nlr = 0.1\n", "bad.ini:2: unknown key 'model.lr', did you mean 'train.lr'?");
    REFUSE("d_model = 8\n[model]\n", "bad.ini:1: key 'd_model' comes before any [section] header",
           "'model.d_model'");
}

static void load_should_refuse_malformed_and_out_of_range_integers(void **state) {
    fixture *fx = *state;
    REFUSE("[model]\nd_model = 12x\n", "bad.ini:2: key 'model.d_model': '12x' is not an integer",
           "expected an integer >= 1");
    REFUSE("[model]\nd_model = 1.5\n", "bad.ini:2: key 'model.d_model': '1.5' is not an integer");
    REFUSE("[train]\n\nbatch_size = 0\n", "bad.ini:3: key 'train.batch_size': '0' is out of range",
           "expected an integer >= 1");
    REFUSE("[train]\nwarmup = -1\n", "bad.ini:2: key 'train.warmup': '-1' is out of range", ">= 0");
    REFUSE("[model]\nd_ff = 99999999999\n", "bad.ini:2: key 'model.d_ff': '99999999999' is too large");
    REFUSE("[train]\nseed = -1\n", "bad.ini:2: key 'train.seed': '-1' is not an integer",
           "unsigned 64-bit integer");
    REFUSE("[train]\nseed = 18446744073709551616\n", "bad.ini:2: key 'train.seed'", "too large");
}

static void load_should_refuse_malformed_non_finite_and_out_of_range_floats(void **state) {
    fixture *fx = *state;
    REFUSE("[train]\nlr = abc\n",
           "bad.ini:2: key 'train.lr': 'abc' is not a number, expected a finite float >= 0");
    REFUSE("[train]\nlr = nan\n", "bad.ini:2: key 'train.lr': 'nan' is not finite", "finite float >= 0");
    REFUSE("[train]\nlr = inf\n", "bad.ini:2: key 'train.lr': 'inf' is not finite");
    REFUSE("[train]\nlr = 1e309\n", "bad.ini:2: key 'train.lr': '1e309' is not finite");
    REFUSE("[model]\ndropout = 1e39\n", "bad.ini:2: key 'model.dropout': '1e39' is not finite");
    REFUSE("[train]\nlr = 0.1.2\n", "bad.ini:2: key 'train.lr': '0.1.2' is not a number");
    REFUSE("[model]\ndropout = 1\n", "bad.ini:2: key 'model.dropout': '1' is out of range",
           "expected a finite float in [0, 1)");
    REFUSE("[model]\nlayer_norm_eps = 0\n", "key 'model.layer_norm_eps': '0' is out of range", "> 0");
    REFUSE("[train]\nbeta2 = -0.5\n", "key 'train.beta2': '-0.5' is out of range", "in [0, 1)");
    REFUSE("[train]\neps = 1e-400\n", "key 'train.eps': '1e-400' is too small for a double");
    REFUSE("[model]\nlayer_norm_eps = 1e-60\n", "key 'model.layer_norm_eps': '1e-60' is too small for a float");
}

static void load_should_refuse_bad_booleans_enums_and_empty_values(void **state) {
    fixture *fx = *state;
    REFUSE("[model]\nnorm_first = maybe\n", "bad.ini:2: key 'model.norm_first': 'maybe' is not a boolean",
           "true, false, 1, 0, yes, no, on or off");
    REFUSE("[model]\nactivation = swish\n", "bad.ini:2: key 'model.activation': 'swish' is not a valid choice",
           "expected one of: relu, gelu");
    REFUSE("[train]\nschedule = linear\n", "key 'train.schedule'", "one of: constant, cosine, noam");
    REFUSE("[train]\noptimizer = adam\n", "key 'train.optimizer'", "one of: adamw, sgd");
    REFUSE("[data]\ntask = seq2seq\n", "key 'data.task'", "one of: tag, classify");
    REFUSE("[model]\npositional = rope\n", "key 'model.positional'", "one of: learned, sinusoidal");
    REFUSE("[train]\nlr =\n", "bad.ini:2: key 'train.lr': empty value, expected a finite float >= 0");
    REFUSE("[data]\ntrain = ; nothing\n", "bad.ini:2: key 'data.train': empty value");
}

static void load_should_refuse_duplicates_syntax_errors_and_overlong_lines(void **state) {
    fixture *fx = *state;
    REFUSE("[model]\nd_model = 8\nn_heads = 2\n[model]\nd_model = 16\n",
           "bad.ini:5: key 'model.d_model' is set twice (first at line 2)");
    REFUSE("[model]\nd_model 8\n", "bad.ini:2:", "neither a [section] header nor a 'key = value' line");
    REFUSE("[model\nd_model = 8\n", "bad.ini:1: section header '[model' has no closing ']'");
    char text[800];
    snprintf(text, sizeof text, "[data]\n; %0300d\ntrain = %0300d\n", 0, 0); /* long comments are fine */
    REFUSE(text, "bad.ini:3: line is", "characters long");
    /* The first error wins: a later error does not replace it. */
    REFUSE("[model]\nd_model = x\nn_heads = y\n", "bad.ini:2: key 'model.d_model'");
}

static void load_should_report_a_missing_file_as_bad_input(void **state) {
    fixture *fx = *state;
    char path[1024];
    snprintf(path, sizeof path, "%s/does-not-exist.ini", fx->dir);
    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    assert_int_equal(me_config_load(&c, path, &err), ME_ERR_NOFILE);
    assert_int_equal(err.status, ME_ERR_NOFILE);
    assert_msg_contains(err.msg, path);
    /* A NULL error context is allowed. */
    assert_int_equal(me_config_load(&c, path, NULL), ME_ERR_NOFILE);
    /* a directory is not a config file either */
    assert_int_equal(me_config_load(&c, fx->dir, &err), ME_ERR_NOFILE);
}

static void a_refused_load_should_leave_the_config_unchanged(void **state) {
    fixture *fx = *state;
    char path[1024];
    write_file(fx, "half.ini", "[model]\nd_model = 32\nn_heads = 4\nd_ff = oops\n", path, sizeof path);
    me_config c, before;
    me_config_defaults(&c);
    me_config_defaults(&before);
    assert_int_equal(me_config_load(&c, path, NULL), ME_ERR_CONFIG);
    assert_configs_equal(&c, &before);
    assert_string_equal(c.path, "");
    assert_int_equal(c.n_origins, 0);
}

/* ---- --set -------------------------------------------------------------------------------------- */

static void set_should_override_values_and_record_its_origin(void **state) {
    fixture *fx = *state;
    char path[1024];
    write_file(fx, "s.ini", "[model]\nd_model = 32\nn_heads = 4\n", path, sizeof path);
    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    assert_int_equal(me_config_load(&c, path, &err), ME_OK);
    assert_int_equal(me_config_set(&c, "model.d_model=64", &err), ME_OK);
    assert_int_equal(me_config_set(&c, " train.lr = 0.25 ", &err), ME_OK);
    assert_int_equal(me_config_set(&c, "train.schedule=cosine", &err), ME_OK);
    assert_int_equal(c.model.d_model, 64);
    assert_true(c.train.lr == 0.25);
    assert_int_equal(c.train.schedule, ME_SCHED_COSINE);
    assert_string_equal(me_config_origin(&c, "model.d_model"), "--set model.d_model=64");
    char origin[1100];
    snprintf(origin, sizeof origin, "%s:3", path);
    assert_string_equal(me_config_origin(&c, "model.n_heads"), origin);
    /* Overriding twice keeps one origin entry per key. */
    assert_int_equal(me_config_set(&c, "model.d_model=128", &err), ME_OK);
    assert_string_equal(me_config_origin(&c, "model.d_model"), "--set model.d_model=128");
    int count = 0;
    for (int i = 0; i < c.n_origins; i++) count += strcmp(c.origins[i].key, "model.d_model") == 0;
    assert_int_equal(count, 1);
}

static void set_should_refuse_bad_assignments_with_a_set_prefix(void **state) {
    (void)state;
    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    assert_int_equal(me_config_set(&c, "model.d_modle=64", &err), ME_ERR_CONFIG);
    assert_string_equal(err.msg, "--set model.d_modle=64: unknown key 'model.d_modle', did you mean 'model.d_model'?");
    assert_int_equal(me_config_set(&c, "modle.d_model=64", &err), ME_ERR_CONFIG);
    assert_msg_contains(err.msg, "--set modle.d_model=64: unknown section '[modle]', did you mean '[model]'?");
    assert_int_equal(me_config_set(&c, "train.lr=nan", &err), ME_ERR_CONFIG);
    assert_msg_contains(err.msg, "--set train.lr=nan: key 'train.lr': 'nan' is not finite");
    assert_int_equal(me_config_set(&c, "model.n_heads=0", &err), ME_ERR_CONFIG);
    assert_msg_contains(err.msg, "--set model.n_heads=0: key 'model.n_heads': '0' is out of range");
    assert_int_equal(me_config_set(&c, "train.lr=", &err), ME_ERR_CONFIG);
    assert_msg_contains(err.msg, "empty value");
    assert_int_equal(me_config_set(&c, "d_model=64", &err), ME_ERR_CONFIG);
    assert_msg_contains(err.msg, "--set d_model=64: expected section.key=value");
    assert_int_equal(me_config_set(&c, "model.d_model", &err), ME_ERR_CONFIG);
    assert_msg_contains(err.msg, "expected section.key=value");
    /* Refused overrides change nothing. */
    assert_int_equal(c.model.n_heads, 0);
    assert_true(c.train.lr == 1e-3);
    assert_int_equal(c.n_origins, 0);
}

/* ---- validation --------------------------------------------------------------------------------- */

static void validate_should_require_d_model_and_n_heads(void **state) {
    (void)state;
    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    assert_int_equal(me_config_validate(&c, &err), ME_ERR_CONFIG);
    assert_msg_contains(err.msg, "model.d_model is required");
    assert_int_equal(me_config_set(&c, "model.d_model=8", &err), ME_OK);
    assert_int_equal(me_config_validate(&c, &err), ME_ERR_CONFIG);
    assert_msg_contains(err.msg, "model.n_heads is required");
    assert_int_equal(me_config_set(&c, "model.n_heads=2", &err), ME_OK);
    assert_int_equal(me_config_validate(&c, &err), ME_OK);
}

static void validate_should_name_both_origins_when_d_model_is_not_divisible_by_n_heads(void **state) {
    fixture *fx = *state;
    char path[1024];
    write_file(fx, "div.ini", "[model]\nd_ff = 16\nd_model = 60\n", path, sizeof path);
    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    assert_int_equal(me_config_load(&c, path, &err), ME_OK);
    assert_int_equal(me_config_set(&c, "model.n_heads=7", &err), ME_OK);
    assert_int_equal(me_config_validate(&c, &err), ME_ERR_CONFIG);
    assert_int_equal(err.status, ME_ERR_CONFIG);
    char where[1100];
    snprintf(where, sizeof where, "%s:3: key 'model.d_model': 60", path);
    assert_msg_contains(err.msg, where);
    assert_msg_contains(err.msg, "model.n_heads = 7 (from --set model.n_heads=7)");
}

static void validate_should_resolve_n_classes_from_vocab_size(void **state) {
    (void)state;
    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    assert_int_equal(me_config_set(&c, "model.d_model=8", &err), ME_OK);
    assert_int_equal(me_config_set(&c, "model.n_heads=2", &err), ME_OK);
    assert_int_equal(me_config_set(&c, "model.vocab_size=50", &err), ME_OK);
    assert_int_equal(me_config_validate(&c, &err), ME_OK);
    assert_int_equal(c.model.n_classes, 50);

    /* Encoder only: n_classes must stay 0. */
    assert_int_equal(me_config_set(&c, "model.vocab_size=0", &err), ME_OK);
    assert_int_equal(me_config_set(&c, "model.n_classes=5", &err), ME_OK);
    assert_int_equal(me_config_validate(&c, &err), ME_ERR_CONFIG);
    assert_msg_contains(err.msg, "--set model.n_classes=5: key 'model.n_classes': 5");
    assert_msg_contains(err.msg, "model.vocab_size is 0");
    assert_int_equal(me_config_set(&c, "model.n_classes=0", &err), ME_OK);
    assert_int_equal(me_config_validate(&c, &err), ME_OK);
    assert_int_equal(c.model.n_classes, 0);

    /* Values set by code are range-checked too. */
    c.model.max_len = 0;
    assert_int_equal(me_config_validate(&c, &err), ME_ERR_CONFIG);
    assert_msg_contains(err.msg, "default: key 'model.max_len': 0 is out of range");
}

/* ---- paths ---------------------------------------------------------------------------------------- */

static void relative_paths_should_resolve_against_the_config_folder(void **state) {
    fixture *fx = *state;
    char sub[1024], path[1100];
    snprintf(sub, sizeof sub, "%s/sub", fx->dir);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", sub);
    assert_int_equal(system(cmd), 0);
    write_file(fx, "sub/tiny.ini", "[data]\ntrain = ../data/t.txt\nvalid = /abs/v.txt\n", path, sizeof path);

    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    assert_int_equal(me_config_load(&c, path, &err), ME_OK);
    char want[1200];
    snprintf(want, sizeof want, "%s/../data/t.txt", sub);
    assert_string_equal(c.data.train, want);
    assert_string_equal(c.data.valid, "/abs/v.txt");
    assert_string_equal(c.dir, sub);
    /* out_dir not set: runs/<base name> relative to the current directory. */
    assert_string_equal(c.log.out_dir, "runs/tiny");
    assert_string_equal(me_config_origin(&c, "log.out_dir"), "default");

    /* --set paths are relative to the current directory. */
    assert_int_equal(me_config_set(&c, "data.train=mine/train.txt", &err), ME_OK);
    assert_string_equal(c.data.train, "mine/train.txt");
    assert_int_equal(me_config_set(&c, "log.out_dir=runs/x", &err), ME_OK);
    assert_string_equal(c.log.out_dir, "runs/x");

    /* A path next to the current directory (dir ".") is kept as written. */
    me_config d;
    me_config_defaults(&d);
    assert_int_equal(me_config_load_string(&d, "[data]\ntrain = a/b.txt\n", "inline.ini", &err), ME_OK);
    assert_string_equal(d.data.train, "a/b.txt");
    assert_string_equal(d.log.out_dir, "runs/inline");
}

/* ---- text, writing and the round trip ---------------------------------------------------------- */

static void load_string_should_count_lines_within_the_text_and_use_its_name(void **state) {
    (void)state;
    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    assert_int_equal(me_config_load_string(&c, "[model]\n\n\nd_model = 8\nn_heads = two\n", "ckpt:config", &err),
                     ME_ERR_CONFIG);
    assert_msg_contains(err.msg, "ckpt:config:5: key 'model.n_heads': 'two' is not an integer");
    assert_int_equal(me_config_load_string(&c, "[model]\nd_model = 8", "ckpt:config", &err), ME_OK);
    assert_int_equal(c.model.d_model, 8);
    assert_string_equal(me_config_origin(&c, "model.d_model"), "ckpt:config:2");
}

static void defaults_should_round_trip_through_write_and_load(void **state) {
    (void)state;
    me_config a, b;
    me_config_defaults(&a);
    me_config_defaults(&b);
    b.model.d_ff = 1; /* make sure loading really sets the fields */
    b.train.lr = 7.0f;
    snprintf(b.log.out_dir, sizeof b.log.out_dir, "elsewhere");
    char *text = NULL;
    me_error err = {0};
    assert_int_equal(me_config_to_string(&a, 0, &text, &err), ME_OK);
    assert_non_null(text);
    assert_non_null(strstr(text, "[model]"));
    assert_non_null(strstr(text, "[data]"));
    assert_non_null(strstr(text, "[train]"));
    assert_non_null(strstr(text, "[log]"));
    assert_non_null(strstr(text, "\nlr = 0.001\n")); /* a double, as PyTorch's Python float */
    me_status st = me_config_load_string(&b, text, "roundtrip", &err);
    if (st != ME_OK) print_error("%s\n%s\n", err.msg, text);
    assert_int_equal(st, ME_OK);
    assert_configs_equal(&a, &b);
    free(text);
}

static void a_full_config_should_round_trip_through_a_file(void **state) {
    fixture *fx = *state;
    char path[1024];
    write_file(fx, "full.ini", FULL_INI, path, sizeof path);
    me_config a;
    me_config_defaults(&a);
    me_error err = {0};
    assert_int_equal(me_config_load(&a, path, &err), ME_OK);
    /* Awkward values must come back bit for bit: floats (model) and doubles (optimizer). */
    a.model.layer_norm_eps = 1.17549435e-38f;
    a.model.dropout = 0.99999994f;
    a.train.lr = 0.1;
    a.train.beta2 = 0.99999999999999989;
    a.train.eps = 2.2250738585072014e-308;
    a.train.weight_decay = 1.7976931348623157e308;
    a.train.clip_grad_norm = 4.9406564584124654e-324; /* smallest subnormal */

    char out[1100];
    snprintf(out, sizeof out, "%s/written.ini", fx->dir);
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    assert_int_equal(me_config_write(&a, f, &err), ME_OK);
    assert_int_equal(fclose(f), 0);

    /* Every key appears in the written file. */
    char *text = NULL;
    assert_int_equal(me_config_to_string(&a, 0, &text, &err), ME_OK);
    static const char *const keys[] = {"d_model", "n_heads", "d_ff", "n_layers", "activation", "norm_first",
        "final_norm", "layer_norm_eps", "dropout", "vocab_size", "n_classes", "max_len", "positional", "task",
        "train", "valid", "steps", "batch_size", "optimizer", "lr", "beta1", "beta2", "eps", "weight_decay",
        "decay_norm_and_bias", "momentum", "schedule", "warmup", "clip_grad_norm", "seed", "eval_every",
        "stop_at_accuracy", "threads", "thread_shards", "out_dir", "history_every", "checkpoint_every"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "\n%s = ", keys[i]);
        assert_msg_contains(text, needle);
    }
    free(text);

    /* The written paths are absolute here (they were resolved against the temp folder), so loading
     * the written file from its own folder gives the same values. */
    me_config b;
    me_config_defaults(&b);
    me_status st = me_config_load(&b, out, &err);
    if (st != ME_OK) print_error("%s\n", err.msg);
    assert_int_equal(st, ME_OK);
    assert_configs_equal(&a, &b);
}

static void write_should_refuse_a_path_that_would_not_load_back(void **state) {
    (void)state;
    me_config c;
    me_config_defaults(&c);
    snprintf(c.data.train, sizeof c.data.train, "a ; b");
    char *text = NULL;
    me_error err = {0};
    assert_int_equal(me_config_to_string(&c, 0, &text, &err), ME_ERR_CONFIG);
    assert_null(text);
    assert_msg_contains(err.msg, "key 'data.train'");
}


/* ---- numbers: the shortest text that loads back --------------------------------------------------- */

typedef struct {
    const char *key; /* "section.name" */
    size_t offset;   /* of the field in me_config */
    int single;      /* float (1) or double (0) */
    double value;    /* stored at the field's precision */
    const char *want; /* the shortest %g text that strtof / strtod read back as the same value */
} awkward_number;

#define FIELD(f) offsetof(me_config, f)

/* The wanted texts are the shortest round-trip forms as Python's repr (doubles) and a float32
 * search over %.1g .. %.9g give them. */
static const awkward_number AWKWARD[] = {
    {"model.layer_norm_eps", FIELD(model.layer_norm_eps), 1, 1e-5, "1e-05"}, /* was 9.99999975e-06 */
    {"model.layer_norm_eps", FIELD(model.layer_norm_eps), 1, 1e-6, "1e-06"},
    {"model.layer_norm_eps", FIELD(model.layer_norm_eps), 1, 1.0 / 3.0, "0.33333334"},
    {"model.layer_norm_eps", FIELD(model.layer_norm_eps), 1, FLT_MIN, "1.1754944e-38"},
    {"model.layer_norm_eps", FIELD(model.layer_norm_eps), 1, 1.401298464324817e-45, "1e-45"}, /* subnormal */
    {"model.layer_norm_eps", FIELD(model.layer_norm_eps), 1, FLT_MAX, "3.4028235e+38"},
    {"model.layer_norm_eps", FIELD(model.layer_norm_eps), 1, 16777217.0, "16777216"}, /* 2^24 + 1 rounds */
    {"model.dropout", FIELD(model.dropout), 1, 0.1, "0.1"},
    {"model.dropout", FIELD(model.dropout), 1, 0.3, "0.3"},
    {"model.dropout", FIELD(model.dropout), 1, 0.99999994, "0.99999994"}, /* largest float below 1 */
    {"model.dropout", FIELD(model.dropout), 1, 0.0, "0"},
    {"train.beta1", FIELD(train.beta1), 0, 0.9, "0.9"}, /* was 0.90000000000000002 */
    {"train.beta2", FIELD(train.beta2), 0, 0.999, "0.999"},
    {"train.beta2", FIELD(train.beta2), 0, 0.99999999999999989, "0.9999999999999999"}, /* 1 - 2^-53 */
    {"train.lr", FIELD(train.lr), 0, 0.1 + 0.2, "0.30000000000000004"},
    {"train.lr", FIELD(train.lr), 0, 1e-3, "0.001"},
    {"train.lr", FIELD(train.lr), 0, 1.0 / 3.0, "0.3333333333333333"},
    {"train.weight_decay", FIELD(train.weight_decay), 0, 1e23, "1e+23"},
    {"train.weight_decay", FIELD(train.weight_decay), 0, DBL_MAX, "1.7976931348623157e+308"},
    {"train.weight_decay", FIELD(train.weight_decay), 0, 9007199254740993.0, "9007199254740992"}, /* 2^53 + 1 */
    {"train.eps", FIELD(train.eps), 0, 1e-8, "1e-08"},
    {"train.eps", FIELD(train.eps), 0, DBL_MIN, "2.2250738585072014e-308"},
    {"train.clip_grad_norm", FIELD(train.clip_grad_norm), 0, 4.9406564584124654e-324, "5e-324"}, /* subnormal */
    {"train.momentum", FIELD(train.momentum), 0, 0.0, "0"},
};

static void store_number(me_config *c, const awkward_number *n) {
    if (n->single) {
        float v = (float)n->value;
        memcpy((char *)c + n->offset, &v, sizeof v);
    } else {
        memcpy((char *)c + n->offset, &n->value, sizeof n->value);
    }
}

/* Writes c, checks that the text holds "name = want" when want is given, loads the text over
 * defaults and checks the field bit for bit. */
static void check_number_round_trip(const me_config *c, const awkward_number *n, const char *want) {
    char *text = NULL;
    me_error err = {0};
    assert_int_equal(me_config_to_string(c, 0, &text, &err), ME_OK);
    if (want) {
        char line[128];
        snprintf(line, sizeof line, "\n%s = %s\n", strchr(n->key, '.') + 1, want);
        if (!strstr(text, line)) {
            print_error("%s: expected the line \"%s\" in:\n%s\n", n->key, line + 1, text);
            fail();
        }
    }
    me_config b;
    me_config_defaults(&b);
    me_status st = me_config_load_string(&b, text, "numbers.ini", &err);
    if (st != ME_OK) print_error("%s\n%s\n", err.msg, text);
    assert_int_equal(st, ME_OK);
    size_t size = n->single ? sizeof(float) : sizeof(double);
    if (memcmp((const char *)c + n->offset, (const char *)&b + n->offset, size) != 0) {
        print_error("%s does not load back bit for bit from:\n%s\n", n->key, text);
        fail();
    }
    free(text);
}

static void write_should_give_the_shortest_number_text_that_loads_back_bit_for_bit(void **state) {
    (void)state;
    me_config a;
    for (size_t i = 0; i < sizeof AWKWARD / sizeof AWKWARD[0]; i++) {
        me_config_defaults(&a);
        store_number(&a, &AWKWARD[i]);
        check_number_round_trip(&a, &AWKWARD[i], AWKWARD[i].want);
    }
    /* random bit patterns: finite non-negative floats and doubles over their whole range (values
     * of 1 and above go to keys without an upper bound) */
    me_rng rng;
    me_rng_seed(&rng, 17);
    for (int i = 0; i < 2000; i++) {
        uint64_t bits = me_rng_next(&rng);
        awkward_number n;
        if (i % 2) {
            uint32_t fb = (uint32_t)(bits >> 33); /* sign bit clear */
            float f;
            memcpy(&f, &fb, sizeof f);
            if (!(f > 0.0f) || f > FLT_MAX) continue; /* zero, inf or nan */
            n = (awkward_number){"model.layer_norm_eps", FIELD(model.layer_norm_eps), 1, f, NULL};
        } else {
            bits >>= 1;
            double d;
            memcpy(&d, &bits, sizeof d);
            if (!(d > 0.0) || d > DBL_MAX) continue;
            n = (awkward_number){"train.lr", FIELD(train.lr), 0, d, NULL};
        }
        me_config_defaults(&a);
        store_number(&a, &n);
        check_number_round_trip(&a, &n, NULL);
    }
}

/* ---- the README's table ----------------------------------------------------------------------------- */

/* Checks README.md's Configuration table against the config module: every key written by
 * me_config_write is documented, and every documented default is the one me_config_defaults gives
 * ("required", "—" and the documented placeholders are checked against what they stand for). */
static void readme_should_document_every_key_with_its_default(void **state) {
    (void)state;
    char path[1200];
    snprintf(path, sizeof path, "%s/README.md", me_test_source_dir());
    FILE *f = fopen(path, "r");
    if (!f) {
        print_error("cannot open %s\n", path);
        fail();
    }
    me_config defaults;
    me_config_defaults(&defaults);
    char *written = NULL;
    me_error err = {0};
    assert_int_equal(me_config_to_string(&defaults, 0, &written, &err), ME_OK);

    char line[2048], documented[64][64];
    int n_documented = 0, in_config = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "## ", 3) == 0) in_config = strncmp(line, "## Configuration", 16) == 0;
        if (!in_config || line[0] != '|') continue;
        /* | section | `key`, `key` | default, default | meaning | */
        char *cols[4] = {0};
        int nc = 0;
        for (char *p = line + 1; nc < 4 && p && *p; nc++) {
            char *bar = strchr(p, '|');
            if (!bar) break;
            *bar = '\0';
            while (*p == ' ') p++;
            for (char *e = bar - 1; e >= p && *e == ' '; e--) *e = '\0';
            cols[nc] = p;
            p = bar + 1;
        }
        if (nc < 3 || strchr(cols[1], '`') == NULL) continue; /* header and rule lines */
        char keys[8][64];
        int nk = 0;
        for (char *p = strchr(cols[1], '`'); p && nk < 8; p = strchr(p + 1, '`')) {
            char *q = strchr(p + 1, '`');
            assert_non_null(q);
            snprintf(keys[nk++], sizeof keys[0], "%.20s.%.*s", cols[0], (int)(q - p - 1 > 40 ? 40 : q - p - 1),
                     p + 1);
            p = q;
        }
        char defs[8][64];
        int nd = 0;
        for (char *p = cols[2]; p && nd < 8;) {
            char *comma = strstr(p, ", ");
            snprintf(defs[nd++], sizeof defs[0], "%.*s", comma ? (int)(comma - p) : (int)strlen(p), p);
            p = comma ? comma + 2 : NULL;
        }
        if (nd != nk && nd != 1) {
            print_error("README row for %s: %d keys but %d defaults\n", keys[0], nk, nd);
            fail();
        }
        for (int i = 0; i < nk; i++) {
            const char *key = keys[i], *def = defs[nd == 1 ? 0 : i], *name = strchr(key, '.') + 1;
            char got[1100], want[1100], needle[128];
            me_config_value_string(&defaults, key, got, sizeof got);
            if (strcmp(def, "required") == 0) {
                snprintf(needle, sizeof needle, "\n; %s = (required, not set)\n", name);
                assert_msg_contains(written, needle);
            } else if (strcmp(def, "—") == 0) {
                snprintf(needle, sizeof needle, "\n; %s = (not set)\n", name);
                assert_msg_contains(written, needle);
            } else if (strcmp(key, "model.n_classes") == 0 && strcmp(def, "vocab_size") == 0) {
                assert_string_equal(got, "0"); /* 0: validate sets vocab_size */
            } else if (strcmp(key, "log.out_dir") == 0 && strcmp(def, "runs/NAME") == 0) {
                assert_string_equal(got, "runs/default"); /* NAME: the config file's, else "default" */
            } else {
                me_config d;
                me_config_defaults(&d);
                char assignment[sizeof keys[0] + sizeof defs[0] + 1];
                snprintf(assignment, sizeof assignment, "%.63s=%.63s", key, def);
                me_status st = me_config_set(&d, assignment, &err);
                if (st != ME_OK) print_error("README default %s: %s\n", assignment, err.msg);
                assert_int_equal(st, ME_OK);
                me_config_value_string(&d, key, want, sizeof want);
                if (strcmp(got, want) != 0) {
                    print_error("README says %s defaults to %s, the config gives %s\n", key, def, got);
                    fail();
                }
            }
            assert_true(n_documented < 64);
            snprintf(documented[n_documented++], sizeof documented[0], "%s", key);
        }
    }
    fclose(f);

    /* every key the writer writes is in the README */
    char section[32] = "";
    int n_written = 0;
    for (char *p = written; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        char name[64];
        int used = 0;
        if (sscanf(p, "[%31[^]]]", section) == 1) continue;
        if (sscanf(p, "; %63[a-z_0-9] = (%n", name, &used) < 1 || used == 0) {
            used = 0;
            if (sscanf(p, "%63[a-z_0-9] = %n", name, &used) < 1 || used == 0) continue;
        }
        char key[128];
        snprintf(key, sizeof key, "%s.%s", section, name);
        int found = 0;
        for (int i = 0; i < n_documented; i++) found |= strcmp(documented[i], key) == 0;
        if (!found) {
            print_error("key %s is not in README.md's Configuration table\n", key);
            fail();
        }
        n_written++;
    }
    assert_int_equal(n_written, 37);
    assert_int_equal(n_documented, n_written);
    free(written);
}

/* ---- key flags, names and paths ---------------------------------------------------------------------- */

static void enum_names_should_come_from_the_parser_table(void **state) {
    (void)state;
    assert_string_equal(me_config_choice_name("model.activation", ME_ACT_GELU), "gelu");
    assert_string_equal(me_config_choice_name("model.positional", ME_POS_LEARNED), "learned");
    assert_string_equal(me_config_choice_name("data.task", ME_TASK_CLASSIFY), "classify");
    assert_string_equal(me_config_choice_name("train.optimizer", ME_OPT_SGD), "sgd");
    assert_string_equal(me_config_choice_name("train.schedule", ME_SCHED_NOAM), "noam");
    assert_null(me_config_choice_name("train.schedule", 3));
    assert_null(me_config_choice_name("train.schedule", -1));
    assert_null(me_config_choice_name("model.d_model", 0));
    assert_null(me_config_choice_name("no.such_key", 0));

    me_config c;
    me_config_defaults(&c);
    char buf[64];
    c.model.activation = ME_ACT_GELU;
    assert_string_equal(me_config_value_string(&c, "model.activation", buf, sizeof buf), "gelu");
    c.model.norm_first = 1;
    assert_string_equal(me_config_value_string(&c, "model.norm_first", buf, sizeof buf), "true");
    assert_string_equal(me_config_value_string(&c, "model.layer_norm_eps", buf, sizeof buf), "1e-05");
    assert_string_equal(me_config_value_string(&c, "train.beta1", buf, sizeof buf), "0.9");
    assert_string_equal(me_config_value_string(&c, "log.out_dir", buf, sizeof buf), "runs/default");
    assert_string_equal(me_config_value_string(&c, "no.such_key", buf, sizeof buf), "");
    c.model.positional = 7; /* set by code, out of range: shown as its number */
    assert_string_equal(me_config_value_string(&c, "model.positional", buf, sizeof buf), "7");
}

static void first_difference_should_compare_only_the_keys_with_the_flag(void **state) {
    (void)state;
    me_config a, b;
    me_config_defaults(&a);
    me_config_defaults(&b);
    assert_null(me_config_first_difference(&a, &b, ME_KEY_ARCH));
    /* the architecture: every model.* key but dropout, and data.task */
    static const char *const arch[] = {"model.d_model=8", "model.n_heads=2", "model.d_ff=7", "model.n_layers=3",
        "model.activation=gelu", "model.norm_first=true", "model.final_norm=true", "model.layer_norm_eps=1e-6",
        "model.vocab_size=9", "model.n_classes=4", "model.max_len=5", "model.positional=sinusoidal",
        "data.task=classify"};
    for (size_t i = 0; i < sizeof arch / sizeof arch[0]; i++) {
        me_config_defaults(&b);
        assert_int_equal(me_config_set(&b, arch[i], NULL), ME_OK);
        const char *key = me_config_first_difference(&a, &b, ME_KEY_ARCH);
        assert_non_null(key);
        assert_int_equal(strncmp(arch[i], key, strlen(key)), 0);
        assert_int_equal(arch[i][strlen(key)], '=');
    }
    /* everything else may differ */
    static const char *const other[] = {"model.dropout=0.5", "data.train=a.txt", "train.lr=0.5", "train.steps=3",
        "train.optimizer=sgd", "train.threads=2", "log.out_dir=elsewhere", "log.history_every=3"};
    me_config_defaults(&b);
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) assert_int_equal(me_config_set(&b, other[i], NULL), ME_OK);
    assert_null(me_config_first_difference(&a, &b, ME_KEY_ARCH));
    assert_string_equal(me_config_first_difference(&a, &b, ME_KEY_RUN), "log.out_dir");
}

static void to_string_should_leave_out_the_keys_with_an_omitted_flag(void **state) {
    (void)state;
    me_config c;
    me_config_defaults(&c);
    assert_int_equal(me_config_set(&c, "log.out_dir=/somewhere/run", NULL), ME_OK);
    char *text = NULL;
    assert_int_equal(me_config_to_string(&c, ME_KEY_RUN, &text, NULL), ME_OK);
    assert_msg_contains(text, "\n; out_dir = (not set)\n");
    assert_null(strstr(text, "/somewhere/run"));
    free(text);
    assert_int_equal(me_config_to_string(&c, 0, &text, NULL), ME_OK);
    assert_msg_contains(text, "\nout_dir = /somewhere/run\n");
    free(text);
}

static void absolute_paths_should_resolve_data_files_and_join_the_run_directory(void **state) {
    fixture *fx = *state;
    char path[1100], cwd[1024], want[2200];
    write_file(fx, "t.txt", "1\t1\n", path, sizeof path);
    assert_non_null(getcwd(cwd, sizeof cwd));
    me_config c;
    me_config_defaults(&c);
    assert_int_equal(me_config_set(&c, "data.valid=/abs/v.txt", NULL), ME_OK);
    assert_int_equal(me_config_set(&c, "log.out_dir=runs/x", NULL), ME_OK);
    assert_int_equal(chdir(fx->dir), 0);
    assert_int_equal(me_config_set(&c, "data.train=./t.txt", NULL), ME_OK); /* resolved to the file */
    me_config_absolute_paths(&c);
    char real[PATH_MAX];
    assert_non_null(realpath(path, real));
    assert_string_equal(c.data.train, real);
    assert_string_equal(c.data.valid, "/abs/v.txt"); /* absolute: kept */
    char here[1024];
    assert_non_null(getcwd(here, sizeof here));
    snprintf(want, sizeof want, "%s/runs/x", here);
    assert_string_equal(c.log.out_dir, want); /* need not exist */
    assert_int_equal(chdir(cwd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_should_match_the_documented_values),
        cmocka_unit_test_setup_teardown(load_should_parse_a_full_file_into_the_right_values, setup, teardown),
        cmocka_unit_test_setup_teardown(load_should_refuse_unknown_sections_and_keys_with_a_suggestion, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(load_should_refuse_malformed_and_out_of_range_integers, setup, teardown),
        cmocka_unit_test_setup_teardown(load_should_refuse_malformed_non_finite_and_out_of_range_floats, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(load_should_refuse_bad_booleans_enums_and_empty_values, setup, teardown),
        cmocka_unit_test_setup_teardown(load_should_refuse_duplicates_syntax_errors_and_overlong_lines, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(load_should_report_a_missing_file_as_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(a_refused_load_should_leave_the_config_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(set_should_override_values_and_record_its_origin, setup, teardown),
        cmocka_unit_test(set_should_refuse_bad_assignments_with_a_set_prefix),
        cmocka_unit_test(validate_should_require_d_model_and_n_heads),
        cmocka_unit_test_setup_teardown(validate_should_name_both_origins_when_d_model_is_not_divisible_by_n_heads,
                                        setup, teardown),
        cmocka_unit_test(validate_should_resolve_n_classes_from_vocab_size),
        cmocka_unit_test_setup_teardown(relative_paths_should_resolve_against_the_config_folder, setup, teardown),
        cmocka_unit_test(load_string_should_count_lines_within_the_text_and_use_its_name),
        cmocka_unit_test(defaults_should_round_trip_through_write_and_load),
        cmocka_unit_test_setup_teardown(a_full_config_should_round_trip_through_a_file, setup, teardown),
        cmocka_unit_test(write_should_refuse_a_path_that_would_not_load_back),
        cmocka_unit_test(write_should_give_the_shortest_number_text_that_loads_back_bit_for_bit),
        cmocka_unit_test(readme_should_document_every_key_with_its_default),
        cmocka_unit_test(enum_names_should_come_from_the_parser_table),
        cmocka_unit_test(first_difference_should_compare_only_the_keys_with_the_flag),
        cmocka_unit_test(to_string_should_leave_out_the_keys_with_an_omitted_flag),
        cmocka_unit_test_setup_teardown(absolute_paths_should_resolve_data_files_and_join_the_run_directory, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
