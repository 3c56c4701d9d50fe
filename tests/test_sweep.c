/* Tests for sweeps: grid expansion and run names (order, canonical values, escaping, refusals), the
 * record (sweep.ini) read back and compared, the state of a run on disk, the train command and its
 * shell quoting (checked by a real shell), sweep.csv's columns against hand-made summaries, and the
 * binary end to end: a sweep interrupted with SIGINT exits 130, a second call resumes it to the same
 * parameters as an uninterrupted `minienc train`, and a third call finishes at once changing nothing. */
#include "test_util.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "minienc/checkpoint.h"
#include "minienc/safetensors.h"
#include "minienc/sweep.h"

#include "file.h"

typedef struct {
    char dir[512];
    char config[700];
} fixture;

/* A small model on the shipped reverse task (paths absolute, so the config loads from anywhere). */
static void write_config(fixture *fx, long steps, int batch) {
    snprintf(fx->config, sizeof fx->config, "%s/toy.ini", fx->dir);
    FILE *f = fopen(fx->config, "w");
    assert_non_null(f);
    fprintf(f,
            "[model]\nd_model = 32\nn_heads = 2\nd_ff = 64\nn_layers = 2\ndropout = 0.1\nvocab_size = 8\nmax_len = 16\n"
            "[data]\ntask = tag\ntrain = %s/data/reverse/train.txt\nvalid = %s/data/reverse/valid.txt\n"
            "[train]\nsteps = %ld\nbatch_size = %d\neval_every = 50\n[log]\nhistory_every = 10\n",
            me_test_source_dir(), me_test_source_dir(), steps, batch);
    fclose(f);
}

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    me_make_temp_dir(fx->dir, sizeof fx->dir);
    write_config(fx, 100, 8);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    me_remove_tree(fx->dir);
    free(fx);
    return 0;
}

static void names_of(const me_sweep *s, char names[][ME_SWEEP_NAME_MAX + 1], int n) {
    assert_int_equal(me_sweep_n_runs(s), n);
    for (int k = 0; k < n; k++) assert_int_equal(me_sweep_run_name(s, k, names[k], sizeof names[k], NULL), ME_OK);
}

/* ---- names ------------------------------------------------------------------------------------------ */

static void runs_should_be_named_by_canonical_values_first_axis_slowest_seed_fastest(void **state) {
    fixture *fx = *state;
    me_sweep s;
    me_error err = {0};
    assert_int_equal(me_sweep_init(&s, fx->config, NULL, 0, &err), ME_OK);
    /* "1" and "1e-3" are written as config.ini writes them: "true", "0.001" */
    assert_int_equal(me_sweep_add_axis(&s, "model.norm_first=false,1", &err), ME_OK);
    assert_int_equal(me_sweep_add_axis(&s, "train.lr = 1e-3, 3e-4", &err), ME_OK);
    assert_int_equal(me_sweep_set_seeds(&s, 2, &err), ME_OK);
    static const char *const want[8] = {
        "norm_first=false,lr=0.001,seed=1", "norm_first=false,lr=0.001,seed=2", "norm_first=false,lr=0.0003,seed=1",
        "norm_first=false,lr=0.0003,seed=2", "norm_first=true,lr=0.001,seed=1",   "norm_first=true,lr=0.001,seed=2",
        "norm_first=true,lr=0.0003,seed=1",  "norm_first=true,lr=0.0003,seed=2"};
    char names[8][ME_SWEEP_NAME_MAX + 1];
    names_of(&s, names, 8);
    for (int k = 0; k < 8; k++) assert_string_equal(names[k], want[k]);
    /* what run 6 sets over the base, in the order the names give */
    char *sets[ME_SWEEP_MAX_AXES + 1];
    assert_int_equal(me_sweep_run_sets(&s, 6, sets), 3);
    assert_string_equal(sets[0], "model.norm_first=true");
    assert_string_equal(sets[1], "train.lr=0.0003");
    assert_string_equal(sets[2], "train.seed=1");
    for (int i = 0; i < 3; i++) free(sets[i]);
    /* and the run's config is the base with those values */
    me_config *cfg = malloc(sizeof *cfg);
    assert_non_null(cfg);
    char dir[800];
    snprintf(dir, sizeof dir, "%s/runs/x/%s", fx->dir, names[6]);
    assert_int_equal(me_sweep_run_config(&s, 6, dir, cfg, &err), ME_OK);
    assert_int_equal(cfg->model.norm_first, 1);
    assert_true(cfg->train.lr == 3e-4);
    assert_int_equal(cfg->train.seed, 1);
    assert_int_equal(cfg->model.d_model, 32);
    assert_string_equal(cfg->log.out_dir, dir);
    free(cfg);
    me_sweep_free(&s);
}

static void names_should_escape_bytes_that_paths_and_separators_use(void **state) {
    fixture *fx = *state;
    me_sweep s;
    me_error err = {0};
    assert_int_equal(me_sweep_init(&s, fx->config, NULL, 0, &err), ME_OK);
    assert_int_equal(me_sweep_add_axis(&s, "data.valid=a/b c.txt,x=y%z,../up", &err), ME_OK);
    char names[3][ME_SWEEP_NAME_MAX + 1];
    names_of(&s, names, 3);
    assert_string_equal(names[0], "valid=a%2Fb%20c.txt");
    assert_string_equal(names[1], "valid=x%3Dy%25z");
    assert_string_equal(names[2], "valid=..%2Fup"); /* one path component, never ".." */
    me_sweep_free(&s);

    /* seeds alone; no grid and no seeds is one run named "run" */
    assert_int_equal(me_sweep_init(&s, fx->config, NULL, 0, &err), ME_OK);
    char one[ME_SWEEP_NAME_MAX + 1];
    assert_int_equal(me_sweep_n_runs(&s), 1);
    assert_int_equal(me_sweep_run_name(&s, 0, one, sizeof one, &err), ME_OK);
    assert_string_equal(one, "run");
    assert_int_equal(me_sweep_set_seeds(&s, 3, &err), ME_OK);
    char seeds[3][ME_SWEEP_NAME_MAX + 1];
    names_of(&s, seeds, 3);
    assert_string_equal(seeds[2], "seed=3");
    me_sweep_free(&s);
}

static void bad_grids_should_be_refused_naming_the_grid(void **state) {
    fixture *fx = *state;
    me_sweep s;
    me_error err = {0};
    const char *const set[] = {"train.lr=0.01"};
    assert_int_equal(me_sweep_init(&s, fx->config, set, 1, &err), ME_OK);
    static const struct {
        const char *spec, *says;
    } bad[] = {
        {"model.d_modle=1,2", "did you mean 'model.d_model'"},
        {"model.d_model=16,x", "'x' is not an integer"},
        {"train.lr=0.1", "--set train.lr=0.01 and --grid train.lr both set"},
        {"model.norm_first=true,1", "is true, as an earlier value is"},
        {"model.n_layers=1,,2", "an empty value"},
        {"log.out_dir=a,b", "set by the sweep for each run"},
        {"train.threads=1,2", "set by the sweep for each run"},
        {"norm_first=true", "expected SECTION.KEY"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_not_equal(me_sweep_add_axis(&s, bad[i].spec, &err), ME_OK);
        if (!strstr(err.msg, bad[i].says)) fail_msg("--grid %s: '%s' does not say '%s'", bad[i].spec, err.msg, bad[i].says);
    }
    assert_int_equal(s.n_axes, 0);
    assert_int_equal(me_sweep_add_axis(&s, "train.seed=1,2", &err), ME_OK);
    assert_int_equal(me_sweep_set_seeds(&s, 2, &err), ME_ERR_USAGE);
    assert_non_null(strstr(err.msg, "both set the seed"));
    /* a name longer than one path component can be */
    char spec[700];
    snprintf(spec, sizeof spec, "data.valid=%0300d", 7);
    assert_int_equal(me_sweep_add_axis(&s, spec, &err), ME_OK);
    char name[ME_SWEEP_NAME_MAX + 1];
    assert_int_equal(me_sweep_run_name(&s, 0, name, sizeof name, &err), ME_ERR_USAGE);
    assert_non_null(strstr(err.msg, "longer than 255 bytes"));
    me_sweep_free(&s);
    /* a --set of the run directory */
    const char *const out[] = {"log.out_dir=elsewhere"};
    assert_int_equal(me_sweep_init(&s, fx->config, out, 1, &err), ME_ERR_USAGE);
    me_sweep_free(&s);
    assert_int_equal(me_sweep_default_dir("configs/default.ini", NULL, name, sizeof name, &err), ME_OK);
    assert_string_equal(name, "runs/default-sweep");
    assert_int_equal(me_sweep_default_dir("c.ini", "study", name, sizeof name, &err), ME_OK);
    assert_string_equal(name, "runs/study");
    assert_int_equal(me_sweep_default_dir("c.ini", "a/b", name, sizeof name, &err), ME_ERR_USAGE);
    assert_int_equal(me_sweep_default_dir("c.ini", "..", name, sizeof name, &err), ME_ERR_USAGE);
}

/* ---- the record -------------------------------------------------------------------------------------- */

static void record_should_read_back_and_refuse_another_grid_or_base(void **state) {
    fixture *fx = *state;
    me_sweep s, other;
    me_error err = {0};
    const char *const set[] = {"train.steps=30"};
    assert_int_equal(me_sweep_init(&s, fx->config, set, 1, &err), ME_OK);
    assert_int_equal(me_sweep_add_axis(&s, "model.norm_first=false,true", &err), ME_OK);
    assert_int_equal(me_sweep_add_axis(&s, "model.activation=relu,gelu", &err), ME_OK);
    assert_int_equal(me_sweep_set_seeds(&s, 3, &err), ME_OK);
    char path[700];
    snprintf(path, sizeof path, "%s/sweep.ini", fx->dir);
    assert_int_equal(me_sweep_record_write(&s, path, &err), ME_OK);
    me_sweep r;
    assert_int_equal(me_sweep_record_read(&r, path, &err), ME_OK);
    assert_int_equal(r.n_axes, 2);
    assert_string_equal(r.axes[1].key, "model.activation");
    assert_string_equal(r.axes[1].values[1], "gelu");
    assert_int_equal(r.seeds, 3);
    assert_int_equal(r.base->train.steps, 30);
    assert_string_equal(r.config, s.config);
    assert_int_equal(me_sweep_record_check(&r, &s, path, &err), ME_OK);

    /* the same grid with another seed count */
    assert_int_equal(me_sweep_init(&other, fx->config, set, 1, &err), ME_OK);
    assert_int_equal(me_sweep_add_axis(&other, "model.norm_first=false,true", &err), ME_OK);
    assert_int_equal(me_sweep_add_axis(&other, "model.activation=relu,gelu", &err), ME_OK);
    assert_int_equal(me_sweep_set_seeds(&other, 2, &err), ME_OK);
    assert_int_equal(me_sweep_record_check(&r, &other, path, &err), ME_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "model.norm_first=false,true x model.activation=relu,gelu x 3 seeds"));
    assert_non_null(strstr(err.msg, "x 2 seeds"));
    me_sweep_free(&other);

    /* the same grid over another base: the key is named */
    const char *const set2[] = {"train.steps=40"};
    assert_int_equal(me_sweep_init(&other, fx->config, set2, 1, &err), ME_OK);
    assert_int_equal(me_sweep_add_axis(&other, "model.norm_first=false,true", &err), ME_OK);
    assert_int_equal(me_sweep_add_axis(&other, "model.activation=relu,gelu", &err), ME_OK);
    assert_int_equal(me_sweep_set_seeds(&other, 3, &err), ME_OK);
    assert_int_equal(me_sweep_record_check(&r, &other, path, &err), ME_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "train.steps = 30, this call gives 40"));
    me_sweep_free(&other);

    /* only the thread count differs: the same sweep */
    const char *const set3[] = {"train.steps=30", "train.threads=1"};
    assert_int_equal(me_sweep_init(&other, fx->config, set3, 2, &err), ME_OK);
    assert_int_equal(me_sweep_add_axis(&other, "model.norm_first=false,true", &err), ME_OK);
    assert_int_equal(me_sweep_add_axis(&other, "model.activation=relu,gelu", &err), ME_OK);
    assert_int_equal(me_sweep_set_seeds(&other, 3, &err), ME_OK);
    assert_int_equal(me_sweep_record_check(&r, &other, path, &err), ME_OK);
    me_sweep_free(&other);
    me_sweep_free(&r);

    /* a record with a key it never writes is refused */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[sweep]\nseeds = 1\ncolour = blue\n[model]\nd_model = 8\nn_heads = 2\n", f);
    fclose(f);
    assert_int_equal(me_sweep_record_read(&r, path, &err), ME_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "unknown key 'colour'"));
    me_sweep_free(&r);
    me_sweep_free(&s);
}

/* ---- runs on disk ------------------------------------------------------------------------------------ */

static void run_state_should_follow_the_checkpoint_and_refuse_another_run(void **state) {
    fixture *fx = *state;
    me_sweep s;
    me_error err = {0};
    const char *const set[] = {"train.steps=20", "train.threads=1"};
    assert_int_equal(me_sweep_init(&s, fx->config, set, 2, &err), ME_OK);
    assert_int_equal(me_sweep_set_seeds(&s, 1, &err), ME_OK);
    char dir[700], cmd[2400];
    snprintf(dir, sizeof dir, "%s/run", fx->dir);
    me_config *cfg = malloc(sizeof *cfg);
    assert_non_null(cfg);
    assert_int_equal(me_sweep_run_config(&s, 0, dir, cfg, &err), ME_OK);
    me_sweep_state st;
    int64_t step;
    assert_int_equal(me_sweep_run_state(dir, cfg, &st, &step, &err), ME_OK);
    assert_int_equal(st, ME_SWEEP_NEW);
    assert_int_equal(step, -1);

    /* a started run that saved nothing: config.ini alone */
    assert_int_equal(me_file_mkdir_p(dir, &err), ME_OK);
    char path[800];
    snprintf(path, sizeof path, "%s/config.ini", dir);
    char *text = NULL;
    assert_int_equal(me_config_to_string(cfg, 0, &text, &err), ME_OK);
    assert_int_equal(me_file_write_atomic(path, text, strlen(text), &err), ME_OK);
    free(text);
    assert_int_equal(me_sweep_run_state(dir, cfg, &st, &step, &err), ME_OK);
    assert_int_equal(st, ME_SWEEP_RESTART);

    /* the command the sweep runs trains it (with --force over the unsaved start) to its end */
    char **argv;
    assert_int_equal(me_sweep_train_argv(&s, 0, me_test_bin(), dir, st, 1, &argv, &err), ME_OK);
    int n = 0;
    while (argv[n]) n++;
    assert_string_equal(argv[1], "train");
    assert_string_equal(argv[n - 1], "--force");
    size_t used = 0;
    for (int i = 0; argv[i]; i++) {
        char *q = me_sweep_shell_quote(argv[i]);
        used += (size_t)snprintf(cmd + used, sizeof cmd - used, "%s ", q);
        free(q);
    }
    me_sweep_argv_free(argv);
    snprintf(cmd + used, sizeof cmd - used, ">/dev/null 2>&1");
    assert_int_equal(me_run_capture(cmd, NULL, 0), 0);
    assert_int_equal(me_sweep_run_state(dir, cfg, &st, &step, &err), ME_OK);
    assert_int_equal(st, ME_SWEEP_DONE);
    assert_int_equal(step, 20);

    /* another run in its place (here: other steps) is refused, naming the key */
    cfg->train.steps = 30;
    assert_int_equal(me_sweep_run_state(dir, cfg, &st, &step, &err), ME_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "train.steps = 20, the sweep gives 30"));

    /* a checkpoint before the run's end: resumed (config.ini rewritten to the longer run) */
    assert_int_equal(me_config_to_string(cfg, 0, &text, &err), ME_OK);
    assert_int_equal(me_file_write_atomic(path, text, strlen(text), &err), ME_OK);
    free(text);
    assert_int_equal(me_sweep_run_state(dir, cfg, &st, &step, &err), ME_OK);
    assert_int_equal(st, ME_SWEEP_RESUME);
    assert_int_equal(step, 20);
    assert_int_equal(me_sweep_train_argv(&s, 0, "/bin/minienc", dir, st, 2, &argv, &err), ME_OK);
    const char *const want[] = {"/bin/minienc", "train", "--resume", dir, "--set", "train.threads=2", NULL};
    for (int i = 0; want[i] || argv[i]; i++) {
        assert_non_null(argv[i]);
        assert_non_null(want[i]);
        assert_string_equal(argv[i], want[i]);
    }
    me_sweep_argv_free(argv);

    /* files that are not a run are never touched */
    snprintf(path, sizeof path, "%s/other", fx->dir);
    assert_int_equal(me_file_mkdir_p(path, &err), ME_OK);
    snprintf(cmd, sizeof cmd, "%s/other/notes.txt", fx->dir);
    assert_int_equal(me_file_write_atomic(cmd, "x", 1, &err), ME_OK);
    assert_int_equal(me_sweep_run_state(path, cfg, &st, &step, &err), ME_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "no config.ini"));
    free(cfg);
    me_sweep_free(&s);
}

/* Runs `sh -c 'printf "<%s>" ARGS'` with ARGS shell-quoted and returns what it printed. */
static void shell_quote_should_give_each_argument_back_through_a_shell(void **state) {
    (void)state;
    static const char *const args[] = {"plain", "with space", "it's", "a\"b", "$HOME", "`x`", "tab\there", "*", "",
                                       "log.out_dir=/a/b=c,d", "semi;colon", "new\nline", "!bang"};
    int n = (int)(sizeof args / sizeof args[0]);
    char cmd[4096] = "printf '<%s>' ", want[1024] = "", out[1024];
    for (int i = 0; i < n; i++) {
        char *q = me_sweep_shell_quote(args[i]);
        assert_non_null(q);
        strcat(cmd, q);
        strcat(cmd, " ");
        free(q);
        strcat(want, "<");
        strcat(want, args[i]);
        strcat(want, ">");
    }
    char *plain = me_sweep_shell_quote("log.out_dir=/a/b=c,d");
    assert_string_equal(plain, "log.out_dir=/a/b=c,d"); /* nothing to quote */
    free(plain);
    assert_int_equal(me_run_capture(cmd, out, sizeof out), 0);
    assert_string_equal(out, want);
}

/* ---- sweep.csv ---------------------------------------------------------------------------------------- */

/* A summary with n_norms LayerNorms named as the charts name them, drifts g0 + 0.1 k and b0 + 0.1 k. */
static void fake_summary(me_run_summary *s, int n_norms, double g0, double b0) {
    static const char *const stems[] = {"layers.0.norm1", "layers.0.norm2", "layers.1.norm1", "layers.1.norm2"};
    memset(s, 0, sizeof *s);
    s->steps = 300;
    s->train_loss = 0.125;
    s->valid_loss = 0.25;
    s->best_valid_loss = 0.2;
    s->valid_acc = 0.98;
    s->best_valid_acc = 0.995;
    s->acc_target_step = 250;
    s->n_norms = n_norms;
    s->norms = calloc((size_t)n_norms, sizeof *s->norms);
    s->gamma_drift = calloc((size_t)n_norms, sizeof *s->gamma_drift);
    s->beta_drift = calloc((size_t)n_norms, sizeof *s->beta_drift);
    for (int k = 0; k < n_norms; k++) {
        snprintf(s->norms[k].stem, sizeof s->norms[k].stem, "%s", stems[k]);
        s->gamma_drift[k] = g0 + 0.1 * k;
        s->beta_drift[k] = b0 + 0.1 * k;
    }
}

static void csv_should_have_the_documented_columns_and_quote_run_names(void **state) {
    fixture *fx = *state;
    me_sweep s;
    me_error err = {0};
    assert_int_equal(me_sweep_init(&s, fx->config, NULL, 0, &err), ME_OK);
    assert_int_equal(me_sweep_add_axis(&s, "model.n_layers=1,2", &err), ME_OK);
    assert_int_equal(me_sweep_set_seeds(&s, 2, &err), ME_OK);
    me_run_summary one, two;
    fake_summary(&one, 2, 0.5, 0.25);
    fake_summary(&two, 4, 1.5, 1.25);
    two.acc_target_step = -1; /* never reached 0.99 */
    two.valid_loss = NAN;
    char names[4][ME_SWEEP_NAME_MAX + 1];
    names_of(&s, names, 4);
    me_sweep_row rows[4] = {{names[0], 0, "done", &one, 12.5},
                            {names[1], 1, "failed", NULL, NAN},
                            {names[2], 2, "done", &two, 20.0},
                            {names[3], 3, "not started", NULL, NAN}};
    char *text = me_sweep_csv_text(&s, rows, 4, &err);
    assert_non_null(text);
    const char *want =
        "run,model.n_layers,seed,status,steps,train_loss,valid_loss,best_valid_loss,valid_acc,best_valid_acc,"
        "acc99_step,wall_s,layers.0.norm1.gamma_drift,layers.0.norm1.beta_drift,layers.0.norm2.gamma_drift,"
        "layers.0.norm2.beta_drift,layers.1.norm1.gamma_drift,layers.1.norm1.beta_drift,layers.1.norm2.gamma_drift,"
        "layers.1.norm2.beta_drift\n"
        "\"n_layers=1,seed=1\",1,1,done,300,0.125,0.25,0.2,0.98,0.995,250,12.5,0.5,0.25,0.6,0.35,,,,\n"
        "\"n_layers=1,seed=2\",1,2,failed,,,,,,,,,,,,,,,,\n"
        "\"n_layers=2,seed=1\",2,1,done,300,0.125,,0.2,0.98,0.995,,20,1.5,1.25,1.6,1.35,1.7,1.45,1.8,1.55\n"
        "\"n_layers=2,seed=2\",2,2,not started,,,,,,,,,,,,,,,,\n";
    assert_string_equal(text, want);

    /* the wall times read back by run name, whatever the row order */
    char path[700];
    snprintf(path, sizeof path, "%s/sweep.csv", fx->dir);
    assert_int_equal(me_file_write_atomic(path, text, strlen(text), &err), ME_OK);
    double wall[4] = {-1, -1, -1, -1};
    assert_int_equal(me_sweep_csv_read_wall(&s, path, wall, &err), ME_OK);
    assert_true(wall[0] == 12.5 && wall[1] == -1 && wall[2] == 20.0 && wall[3] == -1);
    free(text);
    me_run_summary_free(&one);
    me_run_summary_free(&two);
    me_sweep_free(&s);
}

/* ---- the binary end to end ------------------------------------------------------------------------- */

/* Starts `minienc sweep` in dir with its output in dir/sweep.log; returns the pid. */
static pid_t start_sweep(const char *dir, const char *config) {
    char *bin = realpath(me_test_bin(), NULL); /* before the child changes folder */
    assert_non_null(bin);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(99);
        if (!freopen("sweep.log", "a", stderr) || !freopen("/dev/null", "w", stdout)) _exit(98);
        execl(bin, "minienc", "sweep", config, "--grid", "model.norm_first=false,true", "--jobs", "2", "--set",
              "train.threads=1", "--name", "study", (char *)NULL);
        _exit(97);
    }
    free(bin);
    return pid;
}

static int exit_code(pid_t pid) {
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Every tensor of two safetensors files, byte for byte. */
static void assert_same_tensors(const char *a, const char *b) {
    me_st_file fa, fb;
    me_error err = {0};
    assert_int_equal(me_st_read(&fa, a, &err), ME_OK);
    assert_int_equal(me_st_read(&fb, b, &err), ME_OK);
    assert_int_equal(fa.n, fb.n);
    for (int i = 0; i < fa.n; i++) {
        const me_st_tensor *t = &fa.tensors[i], *u = me_st_find(&fb, t->name);
        if (!u) fail_msg("%s: tensor %s missing from %s", a, t->name, b);
        assert_int_equal(t->nbytes, u->nbytes);
        if (memcmp(t->data, u->data, t->nbytes) != 0) fail_msg("%s differs between %s and %s", t->name, a, b);
    }
    me_st_free(&fa);
    me_st_free(&fb);
}

/* "path size mtime" for every file under dir, sorted, into buf. */
static void tree_listing(const char *dir, char *buf, size_t cap) {
    char cmd[800];
    snprintf(cmd, sizeof cmd, "cd '%s' && find . -printf '%%p %%s %%T@\\n' | sort", dir);
    assert_int_equal(me_run_capture(cmd, buf, cap), 0);
}

static void interrupted_sweep_should_resume_to_the_uninterrupted_result_and_then_change_nothing(void **state) {
    fixture *fx = *state;
    write_config(fx, 300, 32);
    char ck[2][800], log[900], buf[4096];
    snprintf(ck[0], sizeof ck[0], "%s/runs/study/norm_first=false/checkpoint.safetensors", fx->dir);
    snprintf(ck[1], sizeof ck[1], "%s/runs/study/norm_first=true/checkpoint.safetensors", fx->dir);
    snprintf(log, sizeof log, "%s/sweep.log", fx->dir);

    /* 1. SIGINT once both trainings have saved their step 0: both stop, save, and the sweep exits 130 */
    pid_t pid = start_sweep(fx->dir, fx->config);
    for (int i = 0; i < 3000 && !(me_file_probe(ck[0]) == ME_PATH_OTHER && me_file_probe(ck[1]) == ME_PATH_OTHER); i++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(kill(pid, SIGINT), 0);
    int rc = exit_code(pid);
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
    if (rc != 130) fail_msg("interrupted sweep exited %d, expected 130; its output:\n%s", rc, buf);
    int64_t step[2];
    me_error err = {0};
    int stopped = -1; /* a run the signal stopped: the resume is checked on it */
    for (int r = 0; r < 2; r++) {
        assert_int_equal(me_checkpoint_read_step(ck[r], &step[r], &err), ME_OK);
        if (step[r] < 300) stopped = r;
    }
    if (stopped < 0) fail_msg("both runs finished before the signal; the test needs longer runs");
    assert_non_null(strstr(buf, "stopped norm_first="));
    char csv[800];
    snprintf(csv, sizeof csv, "%s/runs/study/sweep.csv", fx->dir);
    char *text;
    size_t size;
    assert_int_equal(me_file_read_all(csv, "csv", &text, &size, &err), ME_OK);
    assert_non_null(strstr(text, ",interrupted,"));
    free(text);

    /* 2. the same command again resumes both to their end */
    pid = start_sweep(fx->dir, fx->config);
    assert_int_equal(exit_code(pid), 0);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(me_checkpoint_read_step(ck[r], &step[r], &err), ME_OK);
        assert_int_equal(step[r], 300);
    }
    assert_int_equal(me_file_read_all(csv, "csv", &text, &size, &err), ME_OK);
    assert_null(strstr(text, "interrupted"));
    assert_non_null(strstr(text, "\nnorm_first=true,true,0,done,300,"));
    free(text);

    /* ... to exactly the parameters and optimizer state of an uninterrupted run (same thread count) */
    char cmd[2000], direct[800];
    snprintf(direct, sizeof direct, "%s/direct", fx->dir);
    snprintf(cmd, sizeof cmd, "'%s' train '%s' --set model.norm_first=%s --set train.threads=1 --set log.out_dir='%s' "
             ">/dev/null 2>&1", me_test_bin(), fx->config, stopped ? "true" : "false", direct);
    assert_int_equal(me_run_capture(cmd, NULL, 0), 0);
    snprintf(cmd, sizeof cmd, "%s/checkpoint.safetensors", direct);
    assert_same_tensors(ck[stopped], cmd);

    /* 3. and once more: done at once, nothing in the folder changes */
    char study[700], *before = malloc(1 << 16), *after = malloc(1 << 16);
    assert_true(before && after);
    snprintf(study, sizeof study, "%s/runs/study", fx->dir);
    tree_listing(study, before, 1 << 16);
    pid = start_sweep(fx->dir, fx->config);
    assert_int_equal(exit_code(pid), 0);
    tree_listing(study, after, 1 << 16);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void plan_commands_run_by_a_shell_should_leave_a_sweep_with_nothing_to_do(void **state) {
    fixture *fx = *state;
    write_config(fx, 20, 8);
    char cmd[3000], out[8192];
    /* --plan records the sweep and prints one command per run; a shell runs them (as xargs or parallel
     * would), from another folder */
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' sweep '%s' --grid model.n_layers=1,2 --seeds 2 --set train.threads=1 "
             "--name planned --plan > plan.txt 2> plan.err && cd / && sh '%s/plan.txt' > /dev/null 2>&1 && wc -l < "
             "'%s/plan.txt'", fx->dir, me_test_bin(), fx->config, fx->dir, fx->dir);
    int code = me_run_capture(cmd, out, sizeof out);
    if (code != 0) fail_msg("exit %d: %s", code, out);
    assert_int_equal(atoi(out), 4);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' sweep '%s' --grid model.n_layers=1,2 --seeds 2 --set train.threads=1 "
             "--name planned 2>&1", fx->dir, me_test_bin(), fx->config);
    code = me_run_capture(cmd, out, sizeof out);
    if (code != 0) fail_msg("exit %d: %s", code, out);
    assert_non_null(strstr(out, "all 4 runs are finished; nothing to do"));
    char csv[800];
    snprintf(csv, sizeof csv, "%s/runs/planned/sweep.csv", fx->dir);
    char *text;
    size_t size;
    me_error err = {0};
    assert_int_equal(me_file_read_all(csv, "csv", &text, &size, &err), ME_OK);
    assert_non_null(strstr(text, "\"n_layers=2,seed=2\",2,2,done,20,"));
    free(text);
    /* a plan of a finished sweep is empty */
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' sweep '%s' --grid model.n_layers=1,2 --seeds 2 --set train.threads=1 "
             "--name planned --plan > plan2.txt 2>/dev/null && wc -c < plan2.txt", fx->dir, me_test_bin(), fx->config);
    assert_int_equal(me_run_capture(cmd, out, sizeof out), 0);
    assert_int_equal(atoi(out), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(runs_should_be_named_by_canonical_values_first_axis_slowest_seed_fastest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(names_should_escape_bytes_that_paths_and_separators_use, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_grids_should_be_refused_naming_the_grid, setup, teardown),
        cmocka_unit_test_setup_teardown(record_should_read_back_and_refuse_another_grid_or_base, setup, teardown),
        cmocka_unit_test_setup_teardown(run_state_should_follow_the_checkpoint_and_refuse_another_run, setup, teardown),
        cmocka_unit_test(shell_quote_should_give_each_argument_back_through_a_shell),
        cmocka_unit_test_setup_teardown(csv_should_have_the_documented_columns_and_quote_run_names, setup, teardown),
        cmocka_unit_test_setup_teardown(plan_commands_run_by_a_shell_should_leave_a_sweep_with_nothing_to_do, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            interrupted_sweep_should_resume_to_the_uninterrupted_result_and_then_change_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
