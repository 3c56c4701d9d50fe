/* Tests for the config module: defaults, parsing, every refusal kind, --set, validation, path
 * resolution and the write -> load round trip. Expected values are written out literally. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minienc/config.h"

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
    assert_int_equal(a->train.threads, b->train.threads);
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

static void load_should_report_a_missing_file_as_an_io_error(void **state) {
    fixture *fx = *state;
    char path[1024];
    snprintf(path, sizeof path, "%s/does-not-exist.ini", fx->dir);
    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    assert_int_equal(me_config_load(&c, path, &err), ME_ERR_IO);
    assert_int_equal(err.status, ME_ERR_IO);
    assert_msg_contains(err.msg, path);
    /* A NULL error context is allowed. */
    assert_int_equal(me_config_load(&c, path, NULL), ME_ERR_IO);
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
    assert_int_equal(me_config_to_string(&a, &text, &err), ME_OK);
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
    assert_int_equal(me_config_to_string(&a, &text, &err), ME_OK);
    static const char *const keys[] = {"d_model", "n_heads", "d_ff", "n_layers", "activation", "norm_first",
        "final_norm", "layer_norm_eps", "dropout", "vocab_size", "n_classes", "max_len", "positional", "task",
        "train", "valid", "steps", "batch_size", "optimizer", "lr", "beta1", "beta2", "eps", "weight_decay",
        "decay_norm_and_bias", "momentum", "schedule", "warmup", "clip_grad_norm", "seed", "eval_every",
        "threads", "out_dir", "history_every", "checkpoint_every"};
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
    assert_int_equal(me_config_to_string(&c, &text, &err), ME_ERR_CONFIG);
    assert_null(text);
    assert_msg_contains(err.msg, "key 'data.train'");
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
        cmocka_unit_test_setup_teardown(load_should_report_a_missing_file_as_an_io_error, setup, teardown),
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
