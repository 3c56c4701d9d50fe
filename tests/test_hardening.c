/* Bad input everywhere: the binary on every file of tests/malformed/ (configs, data files,
 * safetensors, checkpoints that disagree with their config) and on garbage --set overrides, plus
 * regression tests for the bugs the hardening work found.
 *
 * The rule for a refusal: exit 2 for bad input (1 for a runtime failure such as a missing file or an
 * allocation the machine cannot give), no crash (exit < 128), exactly one line starting
 * "minienc: error: " on stderr (the only other line allowed is train's "minienc: training A -> B"
 * banner) naming what is wrong, and no file written to the output or run path. */
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "minienc/checkpoint.h"
#include "minienc/config.h"
#include "minienc/model.h"
#include "minienc/optim.h"
#include "minienc/safetensors.h"
#include "file.h"

#define M "tests/malformed/"

static char tmp[512];
static int case_no;

static int setup(void **state) {
    (void)state;
    me_make_temp_dir(tmp, sizeof tmp);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    me_remove_tree(tmp);
    return 0;
}

static me_cli_result run_cli(const char *args) { return me_run_cli("", args, tmp); }

/* True when path does not exist (a refused run leaves no directory behind, not even an empty one). */
static int nothing_written(const char *path) {
    struct stat sb;
    return stat(path, &sb) != 0 && errno == ENOENT;
}

static int failures;

/* Checks one refusal; reports every problem (the test fails at the end, listing all of them).
 * out: the path the command would write ("" if none). */
static void expect_refusal(const char *args, int want_code, const char *want_text, const char *out) {
    me_cli_result r = run_cli(args);
    const char *problem = NULL;
    char buf[256];
    if (r.code >= 128 || r.code < 0) {
        snprintf(buf, sizeof buf, "crashed or was killed (exit %d)", r.code);
        problem = buf;
    } else if (r.code != want_code) {
        snprintf(buf, sizeof buf, "exit %d, expected %d", r.code, want_code);
        problem = buf;
    } else if (r.error_lines != 1 || r.other_lines != 0) {
        snprintf(buf, sizeof buf, "%d error lines and %d other lines on stderr, expected exactly one error line",
                 r.error_lines, r.other_lines);
        problem = buf;
    } else if (want_text && !strstr(r.error, want_text)) {
        snprintf(buf, sizeof buf, "the error does not mention '%.100s'", want_text);
        problem = buf;
    } else if (out && *out && !nothing_written(out)) {
        snprintf(buf, sizeof buf, "%.200s was written", out);
        problem = buf;
    }
    if (problem) {
        failures++;
        print_error("minienc %.300s\n  -> %s\n  stderr: %.1500s\n", args, problem, r.stderr_text);
    }
}

/* A fresh output path for one case. */
static const char *out_path(char *buf, size_t cap, const char *what) {
    snprintf(buf, cap, "%s/case%d-%s", tmp, ++case_no, what);
    return buf;
}

static void finish(void) {
    int f = failures;
    failures = 0;
    assert_int_equal(f, 0);
}

/* ---- configs ---------------------------------------------------------------------------------- */

static const struct {
    const char *file, *text;
    int code;
    int data; /* the refusal is about a data file, which count does not read */
} bad_configs[] = {
    {"huge_d_model.ini", "is too large", 2, 0},
    {"params_overflow.ini", "GiB", 2, 0},
    {"huge_vocab.ini", "GiB", 2, 0},
    {"huge_layers.ini", "GiB", 2, 0},
    {"heads_not_dividing.ini", "not divisible by model.n_heads", 2, 0},
    {"lr_nan.ini", "'nan' is not finite", 2, 0},
    {"lr_inf.ini", "'inf' is not finite", 2, 0},
    {"negative_steps.ini", "out of range", 2, 0},
    {"dropout_one.ini", "out of range", 2, 0},
    {"unknown_key.ini", "did you mean 'model.d_model'", 2, 0},
    {"duplicate_key.ini", "set twice", 2, 0},
    {"unknown_section.ini", "unknown section '[trian]'", 2, 0},
    {"bad_enum.ini", "not a valid choice", 2, 0},
    {"missing_d_model.ini", "model.d_model is required", 2, 0},
    {"unclosed_section.ini", "no closing ']'", 2, 0},
    {"not_key_value.ini", "neither a [section] header", 2, 0},
    {"long_line.ini", "characters long", 2, 0},
    {"binary.ini", "binary.ini:2:13: NUL byte", 2, 0},
    {"missing_data.ini", "cannot open", 2, 1}, /* a file that is not there: bad input */
};

static void bad_configs_should_be_refused_by_train_and_count_without_writing(void **state) {
    (void)state;
    char args[2048], out[600];
    for (size_t i = 0; i < sizeof bad_configs / sizeof bad_configs[0]; i++) {
        out_path(out, sizeof out, "run");
        snprintf(args, sizeof args, "train " M "%s --set log.out_dir=%s", bad_configs[i].file, out);
        expect_refusal(args, bad_configs[i].code, bad_configs[i].text, out);
        if (!bad_configs[i].data) {
            snprintf(args, sizeof args, "count " M "%s", bad_configs[i].file);
            expect_refusal(args, 2, bad_configs[i].text, "");
        }
    }
    finish();
}

/* ---- data files ------------------------------------------------------------------------------- */

static const struct {
    const char *file, *where;
} bad_data[] = {
    {"data_nul.txt", "data_nul.txt:2:4: NUL byte"},
    {"data_token_too_big.txt", "data_token_too_big.txt:2:3: input token 9 is out of range"},
    {"data_negative.txt", "data_negative.txt:1:3: sign '-'"},
    {"data_no_tab.txt", "data_no_tab.txt:1:12: missing tab"},
    {"data_short_targets.txt", "data_short_targets.txt:1:10: only 2 targets"},
    {"data_two_tabs.txt", "data_two_tabs.txt:1:12: a second tab"},
    {"data_overflow.txt", "data_overflow.txt:1:3: number 99999999999999999999 does not fit"},
    {"data_bad_bytes.txt", "data_bad_bytes.txt:1:1: unexpected byte 0xff"},
    {"data_empty.txt", "data_empty.txt:4:1: no examples"},
    {"data_too_long.txt", "data_too_long.txt:1:33: more than max_len=16"},
    {"data_double_space.txt", "data_double_space.txt:1:3: two spaces"},
};

static void bad_data_files_should_be_refused_with_file_line_and_column(void **state) {
    (void)state;
    char args[2048], out[600];
    for (size_t i = 0; i < sizeof bad_data / sizeof bad_data[0]; i++) {
        const char *f = bad_data[i].file;
        out_path(out, sizeof out, "run");
        snprintf(args, sizeof args, "train " M "tiny.ini --set data.train=" M "%s --set log.out_dir=%s", f, out);
        expect_refusal(args, 2, bad_data[i].where, out);
        out_path(out, sizeof out, "run");
        snprintf(args, sizeof args, "train " M "tiny.ini --set data.valid=" M "%s --set log.out_dir=%s", f, out);
        expect_refusal(args, 2, bad_data[i].where, out);
        snprintf(args, sizeof args, "eval " M "tiny.ini --checkpoint " M "tiny_checkpoint.safetensors --data " M "%s",
                 f);
        expect_refusal(args, 2, bad_data[i].where, "");
    }
    finish();
}

/* ---- safetensors ------------------------------------------------------------------------------ */

static const struct {
    const char *file, *text;
} bad_files[] = {
    {"empty.safetensors", "too short"},
    {"short.safetensors", "too short"},
    {"garbage.safetensors", "exceeds the limit"},
    {"huge_header_length.safetensors", "exceeds the limit"},
    {"header_past_end.safetensors", "runs past the end of the file"},
    {"truncated_checkpoint.safetensors", "runs past the end of the file"},
    {"header_only.safetensors", "run past the end of the 0-byte data region"},
    {"not_json.safetensors", "not valid JSON"},
    {"offsets_overflow.safetensors", "shape[0]"},
    {"offsets_past_end.safetensors", "run past the end"},
    {"bad_dtype.safetensors", "dtype 'F16' is not supported"},
    {"negative_shape.safetensors", "shape[0] is -1"},
};

static void bad_safetensors_should_be_refused_by_count_eval_and_forward(void **state) {
    (void)state;
    char args[2048], out[600];
    const char *fx = "tests/fixtures/encoder/one_head_seq1";
    for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
        const char *f = bad_files[i].file, *text = bad_files[i].text;
        snprintf(args, sizeof args, "count " M "%s", f);
        expect_refusal(args, 2, text, "");
        snprintf(args, sizeof args, "eval " M "tiny.ini --checkpoint " M "%s", f);
        expect_refusal(args, 2, text, "");
        out_path(out, sizeof out, "out.safetensors");
        snprintf(args, sizeof args, "forward %s.ini --weights " M "%s --input %s.io.safetensors --output %s", fx, f, fx,
                 out);
        expect_refusal(args, 2, text, out);
        out_path(out, sizeof out, "out.safetensors");
        snprintf(args, sizeof args, "forward %s.ini --weights %s.weights.safetensors --input " M "%s --output %s", fx, fx,
                 f, out);
        expect_refusal(args, 2, text, out);
    }
    /* a whole file without the tensors forward needs */
    out_path(out, sizeof out, "out.safetensors");
    snprintf(args, sizeof args, "forward %s.ini --weights %s.weights.safetensors --input " M
             "tiny_checkpoint.safetensors --output %s", fx, fx, out);
    expect_refusal(args, 2, "tensor 'x' is missing", out);
    out_path(out, sizeof out, "out.safetensors");
    snprintf(args, sizeof args, "forward %s.ini --weights " M "tiny_checkpoint.safetensors --input %s.io.safetensors "
             "--output %s", fx, fx, out);
    expect_refusal(args, 2, "is missing", out);
    finish();
}

/* ---- checkpoints that disagree with the config ------------------------------------------------- */

static void checkpoints_that_disagree_with_the_config_should_be_refused(void **state) {
    (void)state;
    expect_refusal("eval configs/default.ini --checkpoint " M "tiny_checkpoint.safetensors", 2,
                   "key 'model.d_model' is 64 here but the checkpoint", "");
    expect_refusal("eval " M "tiny.ini --checkpoint " M "wrong_shape_checkpoint.safetensors", 2,
                   "'encoder.layers.0.norm1.weight' is F32 [2, 2], the model expects F32 [4]", "");
    expect_refusal("eval " M "tiny.ini --checkpoint " M "wrong_dtype_checkpoint.safetensors", 2,
                   "is I32 [4], the model expects F32 [4]", "");
    expect_refusal("eval " M "tiny.ini --set model.d_ff=7 --checkpoint " M "tiny_checkpoint.safetensors", 2,
                   "key 'model.d_ff' is 7 here but the checkpoint", "");
    /* the stored config fixes every shape: a tensor that disagrees with it is a broken file */
    expect_refusal("count " M "config_disagrees_checkpoint.safetensors", 2,
                   "tensor 'encoder.layers.0.linear1.weight' is [6, 4] but its stored config says [12, 4]", "");
    expect_refusal("count " M "bad_stored_config_checkpoint.safetensors", 2, "stored config", "");
    finish();
}

/* ---- --set ------------------------------------------------------------------------------------ */

static void garbage_set_overrides_should_be_refused(void **state) {
    (void)state;
    static const struct {
        const char *set, *text;
    } cases[] = {
        {"model.d_model", "expected section.key=value"},
        {"d_model=64", "expected section.key=value"},
        {"=64", "expected section.key=value"},
        {".=64", "did you mean"},
        {"model.=64", "unknown key"},
        {"model.d_model=", "empty value"},
        {"model.d_model=  ", "empty value"},
        {"model.d_model=64abc", "is not an integer"},
        {"model.d_model=0x40", "is not an integer"},
        {"model.d_model=-64", "out of range"},
        {"model.d_model=2147483648", "too large"},
        {"model.d_model=2147483647' --set 'model.n_heads=1", "model.d_model = 2147483647"},
        {"model.n_heads=0", "out of range"},
        {"train.lr=nan", "not finite"},
        {"train.lr=-inf", "not finite"},
        {"train.lr=1e999", "not finite"},
        {"train.lr=1e-400", "too small"},
        {"model.layer_norm_eps=1e-60", "too small"},
        {"train.seed=99999999999999999999999", "too large"},
        {"train.seed=-1", "is not an integer"},
        {"model.activation=", "empty value"},
        {"model.norm_first=maybe", "not a boolean"},
        {"nosuchsection.key=1", "unknown section"},
        {"model.d_model.x=1", "unknown key"},
        {"model . d_model = 64", "unknown"},
    };
    char args[2048];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "count configs/default.ini --set '%s'", cases[i].set);
        expect_refusal(args, 2, cases[i].text, "");
    }
    expect_refusal("count configs/default.ini --set", 2, "--set needs a value", "");
    /* huge values: 100,000 digits, and a 5,000-byte path */
    size_t n = 100000;
    char *big = malloc(n + 256);
    assert_non_null(big);
    int k = snprintf(big, n + 256, "count configs/default.ini --set model.d_model=");
    memset(big + k, '9', n);
    big[k + n] = '\0';
    expect_refusal(big, 2, "too large", "");
    k = snprintf(big, n + 256, "count configs/default.ini --set log.out_dir=");
    memset(big + k, 'a', 5000);
    big[k + 5000] = '\0';
    expect_refusal(big, 2, "too long", "");
    free(big);
    finish();
}

/* ---- absurd sizes ------------------------------------------------------------------------------ */

static void absurd_sizes_should_fail_cleanly_before_training(void **state) {
    (void)state;
    char args[2048], out[600];
    /* parameters: refused by the size check with the memory they would need */
    static const char *const params[] = {"model.max_len=1000000000", "model.vocab_size=1000000000",
                                         "model.n_layers=100000000", "model.d_ff=2000000000"};
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        out_path(out, sizeof out, "run");
        snprintf(args, sizeof args, "train configs/default.ini --set %s --set log.out_dir=%s", params[i], out);
        expect_refusal(args, 2, "GiB", out);
    }
    /* activations for batch x sequence: refused with the memory they would need */
    out_path(out, sizeof out, "run");
    snprintf(args, sizeof args, "train configs/default.ini --set train.batch_size=1000000000 --set log.out_dir=%s", out);
    expect_refusal(args, 2, "GiB of activations", out);
    /* the sinusoidal table [max_len, d_model]: 1 (cannot allocate) or 2 (refused), never a crash or a run */
    static const char *const acts[] = {"model.positional=sinusoidal --set model.max_len=1000000000"};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        out_path(out, sizeof out, "run");
        snprintf(args, sizeof args, "train configs/default.ini --set %s --set log.out_dir=%s", acts[i], out);
        me_cli_result r = run_cli(args);
        if (!((r.code == 1 || r.code == 2) && r.error_lines == 1 && r.other_lines == 0 && nothing_written(out))) {
            failures++;
            print_error("minienc %s\n  -> exit %d, stderr: %.1500s\n", args, r.code, r.stderr_text);
        }
    }
    expect_refusal("eval " M "tiny.ini --checkpoint " M "tiny_checkpoint.safetensors --set train.batch_size=1000000000",
                   2, "GiB of activations", "");
    finish();
}

/* ---- resume with a broken training state -------------------------------------------------------- */

static void resume_should_refuse_a_broken_training_state_and_leave_the_run_unchanged(void **state) {
    (void)state;
    char run[600], args[2048];
    snprintf(run, sizeof run, "%s/tiny-run", tmp);
    snprintf(args, sizeof args, "train " M "tiny.ini --set log.out_dir=%s", run);
    me_cli_result r = run_cli(args);
    assert_int_equal(r.code, 0);
    static const struct {
        const char *file, *text;
    } cases[] = {
        {"negative_step_checkpoint.safetensors", "step '-3' / optim_step '3' are not integers"},
        {"bad_rng_checkpoint.safetensors", "rng 'zz' is not four hex words"},
        {"bad_sampler_checkpoint.safetensors", "position 99999999 is beyond"},
        {"wrong_shape_checkpoint.safetensors", "the model expects F32 [4]"},
        {"truncated_checkpoint.safetensors", "runs past the end of the file"},
    };
    char path[700], metrics_before[8192], metrics_after[8192], config_before[4096], config_after[4096];
    snprintf(path, sizeof path, "%s/metrics.csv", run);
    me_read_text(path, metrics_before, sizeof metrics_before);
    snprintf(path, sizeof path, "%s/config.ini", run);
    me_read_text(path, config_before, sizeof config_before);
    assert_true(strlen(metrics_before) > 0 && strlen(config_before) > 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "cp " M "%s '%s/checkpoint.safetensors'", cases[i].file, run);
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "cd '%s' && %s", me_test_source_dir(), args);
        assert_int_equal(system(cmd), 0);
        snprintf(args, sizeof args, "train --resume %s --set train.steps=6", run);
        expect_refusal(args, 2, cases[i].text, "");
        snprintf(path, sizeof path, "%s/metrics.csv", run);
        me_read_text(path, metrics_after, sizeof metrics_after);
        snprintf(path, sizeof path, "%s/config.ini", run);
        me_read_text(path, config_after, sizeof config_after);
        if (strcmp(metrics_before, metrics_after) || strcmp(config_before, config_after)) {
            failures++;
            print_error("resume from %s changed the run's files\n", cases[i].file);
        }
    }
    /* a run of the default model given the tiny model's checkpoint */
    snprintf(args, sizeof args, "cp " M "tiny_checkpoint.safetensors '%s/checkpoint.safetensors' && "
             "sed -i 's/^d_model = 4$/d_model = 8/' '%s/config.ini'", run, run);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s", me_test_source_dir(), args);
    assert_int_equal(system(cmd), 0);
    snprintf(args, sizeof args, "train --resume %s", run);
    expect_refusal(args, 2, "key 'model.d_model' is 8 here but the checkpoint", "");
    finish();
}

/* ---- regressions at the API level ---------------------------------------------------------------- */

/* Found while building the malformed corpus: inih sees each line as a C string, so a NUL byte cut the
 * line short and "d_model = 64<NUL>junk" loaded as 64. */
static void config_load_should_refuse_a_nul_byte_instead_of_cutting_the_line(void **state) {
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/nul.ini", tmp);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    static const char text[] = "[model]\nd_model = 64\0junk\nn_heads = 4\n";
    fwrite(text, 1, sizeof text - 1, f);
    fclose(f);
    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    assert_int_equal(me_config_load(&c, path, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "nul.ini:2:13: NUL byte"));
    assert_int_equal(c.model.d_model, 0); /* unchanged */

    /* other control bytes are refused too (they would end up raw in messages); tabs are whitespace */
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("[model]\nd_model =\t64\nn_heads = 4\x1b[2J\n", f);
    fclose(f);
    assert_int_equal(me_config_load(&c, path, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "nul.ini:3:12: control byte 0x1b"));
}

/* Found by hand (count /dev/zero): getline read an endless line into all the memory there was and
 * then reported "d_model is required". Lines are now read with a bound. */
static void config_load_should_refuse_an_endless_line_without_reading_it_all(void **state) {
    (void)state;
    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    assert_int_equal(me_config_load(&c, "/dev/zero", &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "/dev/zero:1: line is longer than"));
    expect_refusal("count /dev/zero", 2, "line is longer than", "");
    finish();
}

/* Found by fuzz_config: after the loader began refusing control bytes, --set still took them, so
 * `--set log.out_dir=a<0x17>b` gave a config whose written text did not load back. */
static void set_should_refuse_control_bytes_like_the_file_loader(void **state) {
    (void)state;
    me_config c;
    me_config_defaults(&c);
    me_error err = {0};
    assert_int_equal(me_config_set(&c, "log.out_dir=a\x17" "b", &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "--set log.out_dir=a?b: key 'log.out_dir': control byte 0x17"));
    assert_string_equal(c.log.out_dir, "runs/default");
    /* what --set accepts is written and loaded back unchanged, tab inside a path included */
    assert_int_equal(me_config_set(&c, "log.out_dir=a\tb", &err), ME_OK);
    assert_int_equal(me_config_set(&c, "model.d_model=8", &err), ME_OK);
    assert_int_equal(me_config_set(&c, "model.n_heads=2", &err), ME_OK);
    assert_int_equal(me_config_validate(&c, &err), ME_OK);
    char *text = NULL;
    assert_int_equal(me_config_to_string(&c, 0, &text, &err), ME_OK);
    me_config d;
    me_config_defaults(&d);
    assert_int_equal(me_config_load_string(&d, text, "written.ini", &err), ME_OK);
    assert_string_equal(d.log.out_dir, "a\tb");
    free(text);
    expect_refusal("count configs/default.ini --set \"$(printf 'log.out_dir=a\\033[2Jb')\"", 2,
                   "control byte 0x1b", "");
    finish();
}

/* Found by the malformed corpus: strtoull reads "-3" as 2^64 - 3, so a checkpoint with step "-3"
 * resumed training at step -3. */
static void checkpoint_load_should_refuse_a_negative_or_signed_step(void **state) {
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/" M "tiny.ini", me_test_source_dir());
    me_config cfg;
    me_config_defaults(&cfg);
    me_error err = {0};
    assert_int_equal(me_config_load(&cfg, path, &err), ME_OK);
    assert_int_equal(me_config_validate(&cfg, &err), ME_OK);
    me_model m;
    assert_int_equal(me_model_build(&m, &cfg, &err), ME_OK);
    me_optim o;
    assert_int_equal(me_optim_init(&o, &m.params, &cfg.train, &err), ME_OK);
    me_train_state s;
    memset(&s, 0, sizeof s);
    snprintf(path, sizeof path, "%s/" M "tiny_checkpoint.safetensors", me_test_source_dir());
    assert_int_equal(me_checkpoint_load(path, &m.params, &o, &s, &err), ME_OK);
    assert_int_equal(s.step, 3);
    snprintf(path, sizeof path, "%s/" M "negative_step_checkpoint.safetensors", me_test_source_dir());
    assert_int_equal(me_checkpoint_load(path, &m.params, &o, &s, &err), ME_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "step '-3'"));
    me_optim_free(&o);
    me_model_free(&m);
}

/* Found by the SIGKILL test: a writer killed between creating PATH.tmp.PID and its rename left that
 * file forever. The next write of PATH removes it when PID is dead, and nothing else. */
static void atomic_write_should_remove_temp_files_of_dead_writers_only(void **state) {
    (void)state;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) _exit(0);
    int st;
    assert_int_equal(waitpid(child, &st, 0), child); /* child's pid is now dead */
    char dir[600], path[700], dead[800], alive[800], other[800], nondigit[800];
    snprintf(dir, sizeof dir, "%s/atomic", tmp);
    assert_int_equal(mkdir(dir, 0777), 0);
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    snprintf(dead, sizeof dead, "%s.tmp.%ld", path, (long)child);
    snprintf(alive, sizeof alive, "%s.tmp.%ld", path, (long)getppid());
    snprintf(other, sizeof other, "%s/y.safetensors.tmp.%ld", dir, (long)child);
    snprintf(nondigit, sizeof nondigit, "%s.tmp.12ab", path);
    const char *made[] = {dead, alive, other, nondigit};
    for (int i = 0; i < 4; i++) {
        FILE *f = fopen(made[i], "wb");
        assert_non_null(f);
        fputs("partial", f);
        fclose(f);
    }
    me_error err = {0};
    assert_int_equal(me_file_write_atomic(path, "data", 4, &err), ME_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 4);
    assert_int_not_equal(stat(dead, &sb), 0);  /* a dead writer's temp file of this name: removed */
    assert_int_equal(stat(alive, &sb), 0);     /* a live process's: kept */
    assert_int_equal(stat(other, &sb), 0);     /* another file's: kept */
    assert_int_equal(stat(nondigit, &sb), 0);  /* not of the form NAME.tmp.PID: kept */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_configs_should_be_refused_by_train_and_count_without_writing),
        cmocka_unit_test(bad_data_files_should_be_refused_with_file_line_and_column),
        cmocka_unit_test(bad_safetensors_should_be_refused_by_count_eval_and_forward),
        cmocka_unit_test(checkpoints_that_disagree_with_the_config_should_be_refused),
        cmocka_unit_test(garbage_set_overrides_should_be_refused),
        cmocka_unit_test(absurd_sizes_should_fail_cleanly_before_training),
        cmocka_unit_test(resume_should_refuse_a_broken_training_state_and_leave_the_run_unchanged),
        cmocka_unit_test(config_load_should_refuse_a_nul_byte_instead_of_cutting_the_line),
        cmocka_unit_test(config_load_should_refuse_an_endless_line_without_reading_it_all),
        cmocka_unit_test(set_should_refuse_control_bytes_like_the_file_loader),
        cmocka_unit_test(checkpoint_load_should_refuse_a_negative_or_signed_step),
        cmocka_unit_test(atomic_write_should_remove_temp_files_of_dead_writers_only),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
