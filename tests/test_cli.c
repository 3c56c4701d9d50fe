/* The command line: the option parser every command shares, the help it generates from the same
 * table, --version, "did you mean" for commands and options, and the OpenMP spin setting the binary
 * gives libgomp before it starts. Each case runs the binary and compares with what is written down
 * independently: the CMake project version, the defaults the README documents, exact messages. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmp[512];

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

static me_cli_result run(const char *args) { return me_run_cli("", args, tmp); }

/* A usage refusal: exit 2, stdout empty, exactly one error line on stderr, containing want. */
static void expect_usage_error(const char *args, const char *want) {
    me_cli_result r = run(args);
    if (r.code != 2 || r.error_lines != 1 || r.other_lines != 0 || r.stdout_text[0] || !strstr(r.error, want)) {
        print_error("minienc %s\n  -> exit %d, %d error and %d other lines on stderr, stdout %zu bytes; expected "
                    "exit 2 and one error line containing\n  '%s'\n  stderr: %s\n",
                    args, r.code, r.error_lines, r.other_lines, strlen(r.stdout_text), want, r.stderr_text);
        fail();
    }
}

/* Success: exit 0 and stdout containing want (when not NULL). Returns the result for more checks. */
static me_cli_result expect_success(const char *args, const char *want) {
    me_cli_result r = run(args);
    if (r.code != 0 || (want && !strstr(r.stdout_text, want))) {
        print_error("minienc %s\n  -> exit %d; expected exit 0 and stdout containing '%s'\n  stdout: %.2000s\n"
                    "  stderr: %s\n",
                    args, r.code, want ? want : "", r.stdout_text, r.stderr_text);
        fail();
    }
    return r;
}

static void version_should_print_the_cmake_project_version(void **state) {
    (void)state;
    /* the reference: the project() line of CMakeLists.txt */
    char path[4096], text[8192], want[64];
    snprintf(path, sizeof path, "%s/CMakeLists.txt", me_test_source_dir());
    me_read_text(path, text, sizeof text);
    const char *p = strstr(text, "project(minienc VERSION ");
    assert_non_null(p);
    p += strlen("project(minienc VERSION ");
    size_t n = strspn(p, "0123456789.");
    assert_true(n > 0 && n < 32);
    snprintf(want, sizeof want, "minienc %.*s\n", (int)n, p);
    me_cli_result r = expect_success("--version", NULL);
    assert_string_equal(r.stdout_text, want);
    r = expect_success("version", NULL);
    assert_string_equal(r.stdout_text, want);
}

static void help_should_show_every_option_with_its_default(void **state) {
    (void)state;
    /* the defaults as the README and the old usage lines state them */
    static const struct {
        const char *cmd, *want;
    } cases[] = {
        {"inspect", "--top K     dimensions to list per LayerNorm (default 5)\n"},
        {"data", "--n N             examples; with --valid, training examples (default 2000)\n"},
        {"data", "--min-len A       shortest input, in tokens (default 2)\n"},
        {"data", "--max-len B       longest input, in tokens (default 10)\n"},
        {"data", "--seed S          random seed (default 0)\n"},
        {"data", "--out FILE|-|DIR  the file to write, - for stdout; with --valid, the folder (required)\n"},
        {"bench", "--batch B                sequences per step (default 32)\n"},
        {"bench", "--seq S                  tokens per sequence (default 64)\n"},
        {"bench", "--steps N                timed steps, after warm-up (default 10)\n"},
        {"bench", "--threads T              threads, 0: all cores (default: the config's train.threads)\n"},
        {"eval", "--data FILE              the data file to evaluate on (default: the checkpoint's data.valid)\n"},
        {"eval", "--errors N               list the first N wrong examples (default 0)\n"},
        {"predict", "--top K              classes per position in --json's \"top\" (default: 3, at most the model's "
                    "classes)\n"},
        {"predict", "--input \"TOKENS\"     one input sequence, TAB and targets optional (repeatable)\n"},
        {"data", "--vocab V         input tokens 0 .. V-1 (default: 2 for parity, 8 otherwise)\n"},
        {"train", "--resume RUN_DIR"},
        {"train", "--force "},
        {"count", "--json "},
        {"forward", "--weights W "},
        {"plot", "-h, --help  show this help\n"},
    };
    char args[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "help %s", cases[i].cmd);
        me_cli_result a = expect_success(args, cases[i].want);
        /* the three spellings give the same text */
        snprintf(args, sizeof args, "%s --help", cases[i].cmd);
        me_cli_result b = expect_success(args, NULL);
        snprintf(args, sizeof args, "%s -h", cases[i].cmd);
        me_cli_result c = expect_success(args, NULL);
        assert_string_equal(a.stdout_text, b.stdout_text);
        assert_string_equal(a.stdout_text, c.stdout_text);
    }
    /* the usage line comes from the same table */
    me_cli_result r = expect_success("help eval", NULL);
    const char *usage = "minienc eval RUN_DIR|CHECKPOINT [--data FILE] [--errors N] [--json] [--checkpoint FILE] "
                        "[--set section.key=value ...]\n";
    assert_memory_equal(r.stdout_text, usage, strlen(usage));
    /* --help anywhere among a command's arguments shows the help and runs nothing */
    expect_success("train configs/default.ini --set train.steps=1 --help", "minienc train [CONFIG]");
    /* the overview names every command; with no command at all it goes to stderr with exit 2 */
    r = expect_success("help", NULL);
    static const char *names[] = {"train", "predict", "eval", "count", "forward", "data", "plot", "inspect", "bench"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "\nminienc %s", names[i]);
        const char *at = strstr(r.stdout_text, line);
        if (!at || (at[strlen(line)] != ' ' && at[strlen(line)] != '\n')) {
            print_error("'minienc help' does not list %s:\n%s\n", names[i], r.stdout_text);
            fail();
        }
    }
    r = run("");
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.stderr_text, "minienc train [CONFIG]"));
}

static void mistyped_commands_and_options_should_get_a_suggestion(void **state) {
    (void)state;
    expect_usage_error("trian configs/default.ini", "unknown command 'trian', did you mean 'train'?");
    expect_usage_error("TRAIN", "unknown command 'TRAIN', did you mean 'train'?");
    expect_usage_error("inpsect runs/x", "did you mean 'inspect'?");
    expect_usage_error("help evl", "unknown command 'evl', did you mean 'eval'?");
    expect_usage_error("versoin", "did you mean 'version'?");
    /* nothing near: the list instead of a guess */
    expect_usage_error("xyz",
                       "unknown command 'xyz', expected one of: train predict eval count forward data plot inspect "
                       "sweep compare bench");
    expect_usage_error("eval configs/default.ini --chekpoint x.safetensors",
                       "eval: unknown option '--chekpoint', did you mean '--checkpoint'?");
    expect_usage_error("inspect runs/x --tpo=3", "inspect: unknown option '--tpo', did you mean '--top'?");
    expect_usage_error("inspect runs/x --foo",
                       "inspect: unknown option '--foo', expected one of: --top --sigma --json --help");
    expect_usage_error("plot runs/x --json", "plot: unknown option '--json': plot takes none but --help");
    /* an option of another command is unknown here */
    expect_usage_error("count configs/default.ini --force", "count: unknown option '--force'");
}

static void set_split_by_a_space_should_get_a_targeted_message(void **state) {
    (void)state;
    expect_usage_error("train configs/default.ini --set train.lr 0.01",
                       "train: --set takes section.key=value; got 'train.lr' followed by '0.01': did you mean "
                       "--set train.lr=0.01?");
    expect_usage_error("train --set train.lr 0.01", "did you mean --set train.lr=0.01?");
    expect_usage_error("count configs/default.ini --set=model.d_model 64", "did you mean --set model.d_model=64?");
    /* a lone --set without '=' and nothing after it still gets the config's own message */
    expect_usage_error("count configs/default.ini --set model.d_model", "expected section.key=value");
}

static void bad_usage_should_exit_2_with_one_clear_line(void **state) {
    (void)state;
    expect_usage_error("count configs/default.ini --set",
                       "count: --set needs a value, expected --set section.key=value");
    expect_usage_error("inspect runs/x --top", "inspect: --top needs a value, expected --top K");
    /* an option name is not taken as another option's value */
    expect_usage_error("eval configs/default.ini --checkpoint --json", "eval: --checkpoint needs a value");
    expect_usage_error("inspect runs/x --top 0", "inspect: --top '0' is not an integer in [1, 1000000]");
    expect_usage_error("inspect runs/x --top 3x", "inspect: --top '3x' is not an integer in [1, 1000000]");
    /* a real option: finite, above its low end (excluded), at most its high end */
    expect_usage_error("inspect runs/x --sigma 0", "inspect: --sigma '0' is not a number above 0 and at most 1e+06");
    expect_usage_error("inspect runs/x --sigma=nan", "inspect: --sigma 'nan' is not a number above 0");
    expect_usage_error("inspect runs/x --sigma 2x", "inspect: --sigma '2x' is not a number above 0");
    expect_usage_error("compare runs/x --sigma inf", "compare: --sigma 'inf' is not a number above 0");
    expect_usage_error("sweep configs/default.ini", "sweep: expected at least one --grid or --seeds");
    expect_usage_error("sweep configs/default.ini --seeds 0", "sweep: --seeds '0' is not an integer in [1, 1000]");
    expect_usage_error("bench configs/default.ini --threads=2000",
                       "bench: --threads '2000' is not an integer in [0, 1024]");
    expect_usage_error("count configs/default.ini --json=yes", "count: --json takes no value, got '--json=yes'");
    expect_usage_error("eval", "eval: expected RUN_DIR or CHECKPOINT (or CONFIG --checkpoint FILE)");
    expect_usage_error("predict runs/x --set train.steps=3",
                       "predict: --set does not apply: the model and its config come from the checkpoint");
    expect_usage_error("predict runs/x --input '1 2' --data -", "predict: --input and --data exclude each other");
    expect_usage_error("forward configs/default.ini --weights w --input i", "forward: --output OUT is required");
    expect_usage_error("data sort", "data: --out FILE|-|DIR is required");
    expect_usage_error("plot", "plot: expected RUN_DIR");
    expect_usage_error("plot a b", "plot: one RUN_DIR expected, got 'b' too");
    expect_usage_error("count a.ini b.ini",
                       "count: one CONFIG.ini, CHECKPOINT.safetensors or RUN_DIR expected, got 'b.ini' too");
    expect_usage_error("train a.ini b.ini", "train: one CONFIG expected, got 'b.ini' too");
    char out[600], args[1024];
    snprintf(out, sizeof out, "%s/x.txt", tmp);
    snprintf(args, sizeof args, "data sort --out %s --min-len 5 --max-len 3", out);
    expect_usage_error(args, "data: --min-len 5 is above --max-len 3");
}

static void options_should_parse_the_same_in_every_spelling_and_place(void **state) {
    (void)state;
    me_cli_result a = expect_success("count configs/default.ini --json --set model.d_ff=96", "\"total\"");
    me_cli_result b = expect_success("count --set=model.d_ff=96 --json configs/default.ini", NULL);
    me_cli_result c = expect_success("count --json --set model.d_ff=96 -- configs/default.ini", NULL);
    assert_string_equal(a.stdout_text, b.stdout_text);
    assert_string_equal(a.stdout_text, c.stdout_text);
    /* the override did apply: d_ff 96 differs from the config's own */
    me_cli_result d = expect_success("count configs/default.ini --json", NULL);
    assert_string_not_equal(a.stdout_text, d.stdout_text);
    assert_non_null(strstr(a.stdout_text, "\"d_ff\":\t96"));
    /* later --set wins, like the config loader's order */
    me_cli_result e = expect_success("count configs/default.ini --json --set model.d_ff=8 --set model.d_ff=96", NULL);
    assert_string_equal(a.stdout_text, e.stdout_text);
    /* integer options: "--n 7" and "--n=7" write the same file */
    char out1[600], out2[600], args[1400], t1[8192], t2[8192];
    snprintf(out1, sizeof out1, "%s/a.txt", tmp);
    snprintf(out2, sizeof out2, "%s/b.txt", tmp);
    snprintf(args, sizeof args, "data reverse --n 7 --seed 3 --out %s", out1);
    expect_success(args, "wrote 7 reverse examples");
    snprintf(args, sizeof args, "data --seed=3 --out=%s reverse --n=7", out2);
    expect_success(args, "wrote 7 reverse examples");
    me_read_text(out1, t1, sizeof t1);
    me_read_text(out2, t2, sizeof t2);
    assert_true(t1[0] != '\0');
    assert_string_equal(t1, t2);
}

/* libgomp reports the settings it started with when OMP_DISPLAY_ENV=verbose is set. */
static void openmp_should_start_with_the_long_spin_unless_the_user_chose(void **state) {
    (void)state;
    static const struct {
        const char *env, *want, *not_want;
    } cases[] = {
        {"OMP_DISPLAY_ENV=verbose", "GOMP_SPINCOUNT = '20000000'", NULL},
        {"OMP_DISPLAY_ENV=verbose GOMP_SPINCOUNT=777", "GOMP_SPINCOUNT = '777'", "20000000"},
        {"OMP_DISPLAY_ENV=verbose OMP_WAIT_POLICY=passive", "OMP_WAIT_POLICY = 'PASSIVE'", "20000000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        me_cli_result r = me_run_cli(cases[i].env, "--version", tmp);
        if (r.code != 0 || !strstr(r.stderr_text, cases[i].want) ||
            (cases[i].not_want && strstr(r.stderr_text, cases[i].not_want))) {
            print_error("%s minienc --version\n  -> exit %d, expected libgomp to report %s\n  stderr: %s\n",
                        cases[i].env, r.code, cases[i].want, r.stderr_text);
            fail();
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_should_print_the_cmake_project_version),
        cmocka_unit_test(help_should_show_every_option_with_its_default),
        cmocka_unit_test(mistyped_commands_and_options_should_get_a_suggestion),
        cmocka_unit_test(set_split_by_a_space_should_get_a_targeted_message),
        cmocka_unit_test(bad_usage_should_exit_2_with_one_clear_line),
        cmocka_unit_test(options_should_parse_the_same_in_every_spelling_and_place),
        cmocka_unit_test(openmp_should_start_with_the_long_spin_unless_the_user_chose),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
