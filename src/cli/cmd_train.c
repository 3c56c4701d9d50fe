/* minienc train / data. */
#include <sys/stat.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_dist.h"
#include "minienc/checkpoint.h"
#include "minienc/data.h"
#include "minienc/train.h"

#include "file.h"

static volatile sig_atomic_t stop_requested = 0;

/* First signal: finish the step, save, exit 130. Second: exit at once (files on disk are always whole,
 * since every write is a rename; a killed writer's NAME.tmp.PID is removed by the next write of NAME).
 * Only async-signal-safe calls here: write and _exit. */
static void on_signal(int sig) {
    (void)sig;
    if (stop_requested) _exit(130);
    stop_requested = 1;
    static const char msg[] = "\nminienc: stopping after this step and saving the run "
                              "(signal again to quit at once)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
}

/* configs/default.ini from the working directory, else next to the binary's source tree; NULL (with
 * where it looked in `looked`) when neither exists. */
static const char *default_config(char *buf, size_t cap, char *looked, size_t looked_cap) {
    if (access("configs/default.ini", R_OK) == 0) return "configs/default.ini";
    char cwd[PATH_MAX] = "the working directory";
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, "the working directory");
    snprintf(looked, looked_cap, "%s/configs/default.ini", cwd);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(buf, cap, "%s/../configs/default.ini", exe);
            if (access(buf, R_OK) == 0) return buf;
            size_t used = strlen(looked);
            snprintf(looked + used, looked_cap - used, " and %s", buf);
        }
    }
    return NULL;
}

/* 1 if path is a directory with entries, or any other existing file. */
static int taken(const char *path) {
    me_path_kind k = me_file_probe(path);
    return k == ME_PATH_NONEMPTY_DIR || k == ME_PATH_OTHER;
}

/* When log.out_dir is not set, each run gets a fresh directory: runs/NAME, then runs/NAME-2, ... */
static int pick_free_run_dir(me_config *cfg) {
    char base[ME_PATH_MAX];
    snprintf(base, sizeof base, "%s", cfg->log.out_dir);
    for (int i = 2; taken(cfg->log.out_dir); i++) {
        if (i > 999) return -1;
        char next[ME_PATH_MAX + 16];
        snprintf(next, sizeof next, "%s-%d", base, i);
        if (strlen(next) >= sizeof cfg->log.out_dir) return -1;
        memcpy(cfg->log.out_dir, next, strlen(next) + 1);
    }
    return 0;
}

typedef struct {
    int threads;
    int ranks; /* processes of an mpirun job, 0 outside one */
    int tty;
    int tag; /* task tag: token and sequence accuracy; classify: one accuracy */
    long every;
    long last_line_step;
} progress_view;

static void fmt_eta(char *buf, size_t cap, double s) {
    if (!(s >= 0) || s > 1e7) snprintf(buf, cap, "--");
    else if (s >= 3600) snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, cap, "%.0fs", s);
}

/* "valid loss 0.0123 token acc 99.50% seq acc 97.00%" (tag) or "valid loss 0.0123 acc 97.00%". */
static void fmt_valid(char *buf, size_t cap, const progress_view *v, const me_train_progress *p) {
    if (v->tag)
        snprintf(buf, cap, "valid loss %.4f token acc %.2f%% seq acc %.2f%%", p->valid_loss, 100.0 * p->valid_acc,
                 100.0 * p->valid_seq_acc);
    else
        snprintf(buf, cap, "valid loss %.4f acc %.2f%%", p->valid_loss, 100.0 * p->valid_acc);
}

/* Validation figures appear on a line only when they were measured at that step; the live bar shows
 * the last ones with the step they belong to. */
static void show_progress(void *user, const me_train_progress *p) {
    progress_view *v = user;
    double done = (double)(p->step - p->start_step);
    double eta = done > 0 ? p->elapsed_s / done * (double)(p->steps - p->step) : NAN;
    char eta_s[32], valid[160] = "";
    fmt_eta(eta_s, sizeof eta_s, eta);
    if (v->tty) {
        int width = 24, filled = p->steps > 0 ? (int)((double)width * (double)p->step / (double)p->steps) : width;
        char bar[32], last[200] = "";
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        if (p->valid_step >= 0) {
            fmt_valid(valid, sizeof valid, v, p);
            snprintf(last, sizeof last, "  [step %ld] %s", p->valid_step, valid);
        }
        fprintf(stderr, "\r[%s] %ld/%ld loss %.4f%s  %.0f tok/s  ETA %s   ", bar, p->step, p->steps, p->loss, last,
                p->tokens_per_s, eta_s);
        if (p->step == p->steps) fputc('\n', stderr);
    } else if (p->step % v->every == 0 || p->step == p->steps || p->evaluated) {
        if (p->evaluated) {
            valid[0] = ' ';
            fmt_valid(valid + 1, sizeof valid - 1, v, p);
        }
        fprintf(stderr, "step %ld/%ld loss %.4f lr %.3g grad_norm %.3g tok/s %.0f elapsed %.1fs eta %s%s\n", p->step,
                p->steps, p->loss, p->lr, p->grad_norm, p->tokens_per_s, p->elapsed_s, eta_s, valid);
    }
    fflush(stderr);
}

static void show_note(void *user, const char *msg) {
    const progress_view *v = user;
    if (v->ranks)
        fprintf(stderr, "minienc: %s [%d process%s x %d thread%s]\n", msg, v->ranks, v->ranks == 1 ? "" : "es",
                v->threads, v->threads == 1 ? "" : "s");
    else
        fprintf(stderr, "minienc: %s [%d threads]\n", msg, v->threads);
}

enum { TRAIN_SET, TRAIN_RESUME, TRAIN_FORCE, N_TRAIN_OPTS };
static const cli_option train_options[N_TRAIN_OPTS] = {
    [TRAIN_SET] = CLI_OPTION_SET,
    [TRAIN_RESUME] = {.name = "--resume", .kind = CLI_STRING, .value = "RUN_DIR",
                      .help = "continue that run from its checkpoint, with its config.ini unless CONFIG is given"},
    [TRAIN_FORCE] = {.name = "--force", .kind = CLI_FLAG,
                     .help = "replace the run in a log.out_dir that is not empty"},
};

static int cmd_train(const cli_args *a) {
    const char *resume = a->text[TRAIN_RESUME];
    int force = a->given[TRAIN_FORCE];
    if (resume && force) return cli_usage("train", "--resume and --force exclude each other");
    if (resume) {
        struct stat sb;
        if (stat(resume, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return cli_usage("train", "--resume %s: not a run directory", resume);
    }
    char buf[PATH_MAX + 64];
    const char *path;
    if (a->n_args) path = a->args[0];
    else if (resume) {
        snprintf(buf, sizeof buf, "%s/config.ini", resume);
        path = buf;
    } else {
        char looked[2 * PATH_MAX + 16];
        path = default_config(buf, sizeof buf, looked, sizeof looked);
        if (!path) {
            fprintf(stderr, "minienc: error: configs/default.ini: not found (looked at %s); run minienc from the "
                            "repository's folder, or give a config: minienc train path/to/config.ini\n", looked);
            return 2;
        }
    }
    me_error err = {0};
    me_config cfg;
    if (cli_load_config(&cfg, path, a, &err)) return cli_fail(&err);
    if (resume) { /* the run continues where it is, whatever the config says */
        if (strlen(resume) >= sizeof cfg.log.out_dir) return cli_usage("train", "--resume path too long");
        snprintf(cfg.log.out_dir, sizeof cfg.log.out_dir, "%s", resume);
    }
    if (!resume && !force && strcmp(me_config_origin(&cfg, "log.out_dir"), "default") == 0) {
        char base[ME_PATH_MAX];
        snprintf(base, sizeof base, "%s", cfg.log.out_dir);
        if (pick_free_run_dir(&cfg) != 0)
            return cli_usage("train", "%s and %s-2 .. -999 are all taken; set log.out_dir", base, base);
    }
    cli_dist *dist = cli_dist_current();
    int threads = cli_set_threads(cli_dist_threads(dist, cfg.train.threads));
    cli_dist_check_binding(dist, threads);
    progress_view view = {.threads = threads,
                          .ranks = dist->d.size,
                          .tty = isatty(2),
                          .tag = cfg.data.task == ME_TASK_TAG,
                          .every = cfg.train.steps >= 20 ? cfg.train.steps / 20 : 1};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (dist->d.size) {
        /* mpirun answers SIGINT and SIGTERM with SIGTERM to every rank and SIGKILL a second later
         * (odls_base_sigkill_timeout); SIGUSR1 and SIGUSR2 it forwards and then waits */
        sigaction(SIGUSR1, &sa, NULL);
        sigaction(SIGUSR2, &sa, NULL);
    }
    me_train_hooks hooks = {.progress = show_progress, .note = show_note, .user = &view, .stop = &stop_requested,
                            .dist = dist->d.size ? &dist->d : NULL};
    me_train_result res;
    me_status st = me_train_run(&cfg, resume != NULL, force, &hooks, &res, &err);
    /* Everything is saved: from here on (drawing charts) a signal stops at once. */
    stop_requested = 1;
    if (dist->d.rank > 0) return st ? (cli_dist_reports(dist) ? cli_fail(&err) : me_status_exit_code(st)) : 0;
    if (view.tty) fputc('\n', stderr);
    if (st && !cli_dist_reports(dist)) return me_status_exit_code(st); /* another rank says what failed */
    if (st && cli_dist_group(dist) && st != ME_ERR_INTERRUPTED) me_error_prefix(&err, "rank 0 of %d", dist->d.size);
    /* under mpirun the saved run is announced before the charts: mpirun kills its ranks a second after
     * passing on SIGINT or SIGTERM, and `minienc plot` redraws charts cut short */
    int told = st == ME_ERR_INTERRUPTED && cli_dist_group(dist);
    if (told) cli_fail(&err);
    if (st == ME_OK || st == ME_ERR_INTERRUPTED) {
        me_error perr = {0};
        me_status pst = cli_write_plots(cfg.log.out_dir, &perr);
        if (pst == ME_ERR_FONT) { /* the run is complete without its charts */
            fprintf(stderr, "minienc: warning: %s\n", perr.msg);
        } else if (pst) {
            fprintf(stderr, "minienc: error: %s\n", perr.msg);
            if (st == ME_OK) return me_status_exit_code(perr.status);
        }
    }
    if (st) return told ? me_status_exit_code(st) : cli_fail(&err);
    cli_show_examples(cfg.log.out_dir, 3);
    if (!isnan(res.valid_acc) && view.tag)
        fprintf(stderr, "minienc: done: %ld steps, validation loss %.4f, token accuracy %.2f%%, sequence accuracy "
                "%.2f%%; run in %s\n", res.steps_done, res.valid_loss, 100.0 * res.valid_acc, 100.0 * res.valid_seq_acc,
                cfg.log.out_dir);
    else if (!isnan(res.valid_acc))
        fprintf(stderr, "minienc: done: %ld steps, validation loss %.4f, accuracy %.2f%%; run in %s\n", res.steps_done,
                res.valid_loss, 100.0 * res.valid_acc, cfg.log.out_dir);
    else
        fprintf(stderr, "minienc: done: %ld steps; run in %s\n", res.steps_done, cfg.log.out_dir);
    return 0;
}

enum { DATA_OUT, DATA_VALID, DATA_N, DATA_MIN_LEN, DATA_MAX_LEN, DATA_VOCAB, DATA_SEED, N_DATA_OPTS };
static const cli_option data_options[N_DATA_OPTS] = {
    [DATA_OUT] = {.name = "--out", .kind = CLI_STRING, .value = "FILE|-|DIR", .required = 1,
                  .help = "the file to write, - for stdout; with --valid, the folder"},
    [DATA_VALID] = {.name = "--valid", .kind = CLI_INT, .value = "M", .lo = 1, .hi = 100000000, .def_text = "none",
                    .help = "also M validation examples: DIR/train.txt and DIR/valid.txt, no input in both"},
    [DATA_N] = {.name = "--n", .kind = CLI_INT, .value = "N", .help = "examples; with --valid, training examples",
                .def = 2000, .lo = 1, .hi = 100000000},
    [DATA_MIN_LEN] = {.name = "--min-len", .kind = CLI_INT, .value = "A", .help = "shortest input, in tokens",
                      .def = 2, .lo = 1, .hi = ME_DATA_GEN_MAX_LEN},
    [DATA_MAX_LEN] = {.name = "--max-len", .kind = CLI_INT, .value = "B", .help = "longest input, in tokens",
                      .def = 10, .lo = 1, .hi = ME_DATA_GEN_MAX_LEN},
    [DATA_VOCAB] = {.name = "--vocab", .kind = CLI_INT, .value = "V", .help = "input tokens 0 .. V-1", .lo = 2,
                    .hi = 1000000, .def_text = "2 for parity, 8 otherwise"},
    [DATA_SEED] = {.name = "--seed", .kind = CLI_INT, .value = "S", .help = "random seed", .def = 0, .lo = 0,
                   .hi = LONG_MAX},
};

static int cmd_data(const cli_args *a) {
    const char *task = a->args[0], *out = a->text[DATA_OUT];
    long n = a->num[DATA_N], n_valid = a->given[DATA_VALID] ? a->num[DATA_VALID] : 0, min_len = a->num[DATA_MIN_LEN],
         max_len = a->num[DATA_MAX_LEN], seed = a->num[DATA_SEED];
    long vocab = a->given[DATA_VOCAB] ? a->num[DATA_VOCAB] : me_data_default_vocab(task);
    if (min_len > max_len) return cli_usage("data", "--min-len %ld is above --max-len %ld", min_len, max_len);
    if (n_valid && strcmp(out, "-") == 0)
        return cli_usage("data", "--valid writes two files, DIR/train.txt and DIR/valid.txt: give --out DIR, not -");
    me_error err = {0};
    int vs, nc;
    me_task kind;
    if (me_data_task_info(task, (int)vocab, (int)max_len, &vs, &nc, &kind, &err)) return cli_fail(&err);
    const char *kind_name = kind == ME_TASK_TAG ? "tag" : "classify";
    if (n_valid) {
        if (me_data_generate_split_dir(out, task, (size_t)n, (size_t)n_valid, (int)min_len, (int)max_len, (int)vocab,
                                       (uint64_t)seed, &err))
            return cli_fail(&err);
        printf("wrote %ld training and %ld validation %s examples, no input in both, to %s/train.txt and "
               "%s/valid.txt; config: [model] vocab_size = %d, n_classes = %d, max_len >= %ld; [data] task = %s, "
               "train = %s/train.txt, valid = %s/valid.txt\n",
               n, n_valid, task, out, out, vs, nc, max_len, kind_name, out, out);
        return 0;
    }
    if (strcmp(out, "-") == 0) {
        if (me_data_generate(stdout, task, (size_t)n, (int)min_len, (int)max_len, (int)vocab, (uint64_t)seed, &err))
            return cli_fail(&err);
        return 0;
    }
    if (me_data_generate_file(out, task, (size_t)n, (int)min_len, (int)max_len, (int)vocab, (uint64_t)seed, &err))
        return cli_fail(&err);
    printf("wrote %ld %s examples to %s; config: [model] vocab_size = %d, n_classes = %d, max_len >= %ld; "
           "[data] task = %s\n", n, task, out, vs, nc, max_len, kind_name);
    return 0;
}

const cli_command cli_train = {
    .name = "train", .args = "[CONFIG]", .args_what = "CONFIG", .min_args = 0, .max_args = 1,
    .options = train_options, .n_options = N_TRAIN_OPTS, .run = cmd_train, .data_parallel = 1,
    .summary = "Train a model on a toy task (default configs/default.ini); writes out_dir/{config.ini, metrics.csv,\n"
               "checkpoint.safetensors, history.safetensors, layernorm.csv, plots/}. Under mpirun -np N the\n"
               "batch is split over N processes (see README: More than one machine).",
};

const cli_command cli_data = {
    .name = "data", .args = "TASK", .args_what = "TASK", .min_args = 1, .max_args = 1,
    .options = data_options, .n_options = N_DATA_OPTS, .run = cmd_data,
    .summary = "Generate a toy data set (tasks: reverse, sort, histogram, copy, parity, majority); with --valid M,\n"
               "DIR/train.txt (N examples) and DIR/valid.txt (M) with no input in both.",
};
