/* minienc sweep: trains every run of a grid x seeds as child processes of this binary (`minienc train`,
 * the command --plan prints), J at a time, and keeps sweep.csv up to date. The grid, the names, the
 * record and the CSV are the library's (src/sweep.c); this file runs processes and prints. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include "cli.h"
#include "cli_dist.h"
#include "minienc/report.h"
#include "minienc/sweep.h"

#include "file.h"
#include "internal.h"


static volatile sig_atomic_t signals_seen = 0;

/* The first signal stops the sweep (each training saves and exits 130, as a single run does); a second
 * one makes the trainings quit at once. Only async-signal-safe calls here. */
static void on_signal(int sig) {
    (void)sig;
    if (signals_seen++ == 0) {
        static const char msg[] = "\nminienc: stopping every training after its current step and saving it "
                                  "(signal again to quit at once)\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
    }
}

typedef struct {
    char name[ME_SWEEP_NAME_MAX + 1];
    char dir[ME_PATH_MAX];  /* SWEEP_DIR/<name>, as shown */
    char abs_dir[ME_PATH_MAX]; /* the same, absolute: in the commands, so that they run from any folder */
    char log[ME_PATH_MAX + 300];
    me_sweep_state state;
    int64_t step;           /* checkpoint's step at the start (-1: none) */
    long steps;             /* train.steps */
    const char *status;     /* for sweep.csv */
    me_run_summary sum;
    int have_sum;
    double wall;            /* seconds, from earlier calls plus this one; NaN unknown */
    pid_t pid;              /* running: > 0 */
    double t_start;
    int64_t progress;       /* last step seen in the log while running */
} run_slot;

typedef struct {
    me_sweep s;
    char dir[ME_PATH_MAX];
    int n;
    run_slot *runs;
    int tty;
    int progress_shown;     /* a live progress line is on the terminal */
} sweep_ctx;

/* ---- output ------------------------------------------------------------------------------------------- */

static void fmt_duration(char *buf, size_t cap, double s) {
    if (!(s >= 0) || s > 1e7) snprintf(buf, cap, "--");
    else if (s >= 3600) snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, cap, "%.1fs", s);
}

/* Clears the live progress line (on a terminal) before a line of its own is printed. */
static void clear_progress(sweep_ctx *c) {
    if (c->tty && c->progress_shown) fputs("\r\033[K", stderr);
    c->progress_shown = 0;
}

static void say(sweep_ctx *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void say(sweep_ctx *c, const char *fmt, ...) {
    clear_progress(c);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* The last "step N/M" progress line a training wrote to its log (its non-terminal progress format). */
static int64_t log_progress(const char *log, int64_t fallback) {
    FILE *f = fopen(log, "rb");
    if (!f) return fallback;
    char buf[4096];
    long at = 0;
    if (fseek(f, 0, SEEK_END) == 0 && (at = ftell(f)) > (long)sizeof buf - 1) fseek(f, at - (long)(sizeof buf - 1), SEEK_SET);
    else fseek(f, 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    int64_t best = fallback;
    for (char *p = buf; (p = strstr(p, "step ")); p += 5) {
        if (p != buf && p[-1] != '\n') continue;
        long a, b;
        if (sscanf(p + 5, "%ld/%ld", &a, &b) == 2) best = a;
    }
    return best;
}

/* The last non-empty line of a log (a failed training's error) into buf. */
static void log_last_line(const char *log, char *buf, size_t cap) {
    buf[0] = '\0';
    FILE *f = fopen(log, "rb");
    if (!f) return;
    char line[2048];
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n) snprintf(buf, cap, "%s", line);
    }
    fclose(f);
}

/* ---- sweep.csv ----------------------------------------------------------------------------------------- */

static void refresh_summary(run_slot *r) {
    if (r->have_sum) me_run_summary_free(&r->sum);
    me_error ignored;
    r->have_sum = me_run_summary_read(&r->sum, r->dir, &ignored) == ME_OK;
    if (!r->have_sum) me_run_summary_free(&r->sum);
}

/* Rewrites sweep.csv when its text changed (a sweep with nothing to do leaves the folder as it was). */
static me_status write_csv(sweep_ctx *c, me_error *err) {
    me_sweep_row *rows = calloc((size_t)c->n + 1, sizeof *rows);
    if (!rows) return me_error_set(err, ME_ERR_NOMEM, "out of memory for sweep.csv");
    for (int k = 0; k < c->n; k++) {
        rows[k].name = c->runs[k].name;
        rows[k].k = k;
        rows[k].status = c->runs[k].status;
        rows[k].sum = c->runs[k].have_sum ? &c->runs[k].sum : NULL;
        rows[k].wall_s = c->runs[k].wall;
    }
    char *text = me_sweep_csv_text(&c->s, rows, c->n, err);
    free(rows);
    if (!text) return err->status;
    char path[ME_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/sweep.csv", c->dir);
    char *old = NULL;
    size_t old_size = 0;
    me_error ignored;
    me_status st = ME_OK;
    if (me_file_read_all(path, "sweep.csv", &old, &old_size, &ignored) != ME_OK || old_size != strlen(text) ||
        memcmp(old, text, old_size) != 0)
        st = me_file_write_atomic(path, text, strlen(text), err);
    free(old);
    free(text);
    return st;
}

/* ---- processes ----------------------------------------------------------------------------------------- */

/* Starts argv with stdout and stderr appended to log, stdin from /dev/null, in a process group of its
 * own (a Ctrl-C on the terminal reaches this process alone, which then stops each training once) and,
 * on Linux, told to stop (SIGTERM: save and exit) if this process dies. Returns the pid, -1 on failure. */
static pid_t spawn(const char *exe, char **argv, const char *log, me_error *err) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd < 0) {
        me_error_set(err, ME_ERR_IO, "%s: cannot open the run's log: %s", log, strerror(errno));
        return -1;
    }
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
#if defined(__linux__)
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(130);
#endif
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        if (in >= 0) dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(exe, argv);
        static const char msg[] = "minienc: error: sweep: cannot run the minienc binary\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    int saved = errno;
    close(fd);
    if (in >= 0) close(in);
    if (pid < 0) {
        me_error_set(err, ME_ERR_IO, "cannot start a training: fork: %s", strerror(saved));
        return -1;
    }
    setpgid(pid, pid); /* also here, so that it holds before this process signals the group */
    return pid;
}

/* ---- the command -------------------------------------------------------------------------------------- */

static int cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void free_ctx(sweep_ctx *c) {
    for (int k = 0; c->runs && k < c->n; k++)
        if (c->runs[k].have_sum) me_run_summary_free(&c->runs[k].sum);
    free(c->runs);
    me_sweep_free(&c->s);
}

static void show_progress(sweep_ctx *c, double t0, int done, int failed, int running, int waiting) {
    int64_t total = 0, moved = 0;
    for (int k = 0; k < c->n; k++) {
        run_slot *r = &c->runs[k];
        if (r->state == ME_SWEEP_DONE) continue; /* finished before this call */
        int64_t from = r->step > 0 ? r->step : 0;
        total += r->steps - from;
        moved += (r->progress > from ? r->progress : from) - from;
    }
    double el = me_now_s() - t0, eta = moved > 0 ? el * (double)(total - moved) / (double)moved : NAN;
    char eta_s[32], el_s[32];
    fmt_duration(eta_s, sizeof eta_s, eta);
    fmt_duration(el_s, sizeof el_s, el);
    char line[256], fail_s[32] = "";
    if (failed) snprintf(fail_s, sizeof fail_s, ", %d failed", failed);
    snprintf(line, sizeof line, "sweep: %d/%d done%s, %d running, %d waiting; %.0f%% of the steps to do, %s so far, "
             "ETA %s", done, c->n, fail_s, running, waiting, total > 0 ? 100.0 * (double)moved / (double)total : 100.0,
             el_s, eta_s);
    if (c->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        c->progress_shown = 1;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

enum { OPT_GRID, OPT_SEEDS, OPT_JOBS, OPT_PLAN, OPT_NAME, OPT_SET, N_SWEEP_OPTS };
static const cli_option sweep_options[N_SWEEP_OPTS] = {
    [OPT_GRID] = {.name = "--grid", .kind = CLI_LIST, .value = "SECTION.KEY=V1,V2",
                  .help = "train each of the key's values (repeatable: the runs are the product of the grids)",
                  .hi = ME_SWEEP_MAX_AXES},
    [OPT_SEEDS] = {.name = "--seeds", .kind = CLI_INT, .value = "N",
                   .help = "train every point with train.seed = 1 .. N", .def = 0, .lo = 1,
                   .hi = ME_SWEEP_MAX_SEEDS, .def_text = "the config's train.seed"},
    [OPT_JOBS] = {.name = "--jobs", .kind = CLI_INT, .value = "J",
                  .help = "trainings at once, with cores / J threads each unless train.threads is set", .def = 1,
                  .lo = 1, .hi = 1024},
    [OPT_PLAN] = {.name = "--plan", .kind = CLI_FLAG,
                  .help = "record the sweep and print one shell-quoted 'minienc train' command per run left to do"},
    [OPT_NAME] = {.name = "--name", .kind = CLI_STRING, .value = "NAME", .help = "the sweep's folder: runs/NAME",
                  .def_text = "CONFIG's name + \"-sweep\""},
    [OPT_SET] = CLI_OPTION_SET,
};

static int cmd_sweep(const cli_args *a) {
    /* every process mpirun started would run the whole sweep into the same folder, and its trainings
     * would take mpirun's environment as theirs */
    int refused = cli_dist_refuse("sweep", "every process would run the whole sweep (dividing a sweep's runs among "
                                  "processes is not done yet); run minienc sweep without mpirun");
    if (refused) return refused;
    const char *const *grids = cli_list(a, OPT_GRID);
    int n_grids = a->given[OPT_GRID], plan = a->given[OPT_PLAN];
    long seeds = a->given[OPT_SEEDS] ? a->num[OPT_SEEDS] : 0, jobs = a->num[OPT_JOBS];
    const char *name = a->text[OPT_NAME], *config = a->args[0];
    if (n_grids == 0 && seeds == 0) return cli_usage("sweep", "expected at least one --grid or --seeds");

    sweep_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    me_error err = {0};
    int code = 0;
    me_status st = me_sweep_init(&ctx.s, config, cli_list(a, OPT_SET), a->n_sets, &err);
    for (int g = 0; g < n_grids && !st; g++) st = me_sweep_add_axis(&ctx.s, grids[g], &err);
    if (!st && seeds > 0) st = me_sweep_set_seeds(&ctx.s, (int)seeds, &err);
    if (!st) st = me_sweep_default_dir(config, name, ctx.dir, sizeof ctx.dir, &err);
    if (st) {
        code = cli_fail(&err);
        goto done;
    }
    ctx.n = me_sweep_n_runs(&ctx.s);
    ctx.runs = calloc((size_t)ctx.n, sizeof *ctx.runs);
    me_config *cfg = malloc(sizeof *cfg);
    if (!ctx.runs || !cfg) {
        free(cfg);
        me_error_set(&err, ME_ERR_NOMEM, "out of memory for %d runs", ctx.n);
        code = cli_fail(&err);
        goto done;
    }
    char record[ME_PATH_MAX + 32];
    snprintf(record, sizeof record, "%s/sweep.ini", ctx.dir);
    int have_record = me_file_probe(record) != ME_PATH_ABSENT;
    if (!st && have_record) { /* first: another sweep in this folder is the clearest thing to say */
        me_sweep rec;
        st = me_sweep_record_read(&rec, record, &err);
        if (!st) st = me_sweep_record_check(&rec, &ctx.s, record, &err);
        me_sweep_free(&rec);
    }
    /* every run's config is checked, and what is on disk, before anything is written or started */
    for (int k = 0; k < ctx.n && !st; k++) {
        run_slot *r = &ctx.runs[k];
        st = me_sweep_run_name(&ctx.s, k, r->name, sizeof r->name, &err);
        if (!st && (size_t)snprintf(r->dir, sizeof r->dir, "%s/%s", ctx.dir, r->name) >= sizeof r->dir)
            st = me_error_set(&err, ME_ERR_USAGE, "%s/%s: path too long", ctx.dir, r->name);
        if (!st) st = me_sweep_run_config(&ctx.s, k, r->dir, cfg, &err);
        if (!st) snprintf(r->abs_dir, sizeof r->abs_dir, "%s", cfg->log.out_dir); /* made absolute */
        if (!st) st = me_sweep_run_state(r->dir, cfg, &r->state, &r->step, &err);
        r->steps = cfg->train.steps;
        r->wall = NAN;
        snprintf(r->log, sizeof r->log, "%s/logs/%s.log", ctx.dir, r->name);
        r->status = r->state == ME_SWEEP_DONE ? "done" : r->state == ME_SWEEP_RESUME ? "interrupted" : "not started";
        r->progress = r->step;
    }
    free(cfg);
    if (!st && !have_record) {
        st = me_file_mkdir_p(ctx.dir, &err);
        if (!st) st = me_sweep_record_write(&ctx.s, record, &err);
    }
    if (st) {
        code = cli_fail(&err);
        goto done;
    }

    /* threads per run: the config's train.threads when it sets one, else the cores shared among the jobs */
    int threads = strcmp(me_config_origin(ctx.s.base, "train.threads"), "default") != 0 ? ctx.s.base->train.threads
                  : cores() / (int)jobs > 0                                           ? cores() / (int)jobs
                                                                                      : 1;
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) snprintf(exe, sizeof exe, "minienc");
    else exe[len] = '\0';
    int n_done = 0, todo = 0;
    for (int k = 0; k < ctx.n; k++) n_done += ctx.runs[k].state == ME_SWEEP_DONE;
    todo = ctx.n - n_done;
    char threads_text[64];
    if (threads > 0) snprintf(threads_text, sizeof threads_text, "%d thread%s each", threads, threads == 1 ? "" : "s");
    else snprintf(threads_text, sizeof threads_text, "all cores each");

    if (plan) {
        fprintf(stderr, "minienc: sweep %s: %d run%s, %d finished, %d to run (%s); the commands below write the same "
                "directories\n", ctx.dir, ctx.n, ctx.n == 1 ? "" : "s", n_done, todo, threads_text);
        for (int k = 0; k < ctx.n && !st; k++) {
            run_slot *r = &ctx.runs[k];
            if (r->state == ME_SWEEP_DONE) continue;
            char **av;
            if ((st = me_sweep_train_argv(&ctx.s, k, exe, r->abs_dir, r->state, threads, &av, &err))) break;
            for (int i = 0; av[i]; i++) {
                char *q = me_sweep_shell_quote(av[i]);
                printf("%s%s", i ? " " : "", q ? q : "");
                free(q);
            }
            putchar('\n');
            me_sweep_argv_free(av);
        }
        if (st) code = cli_fail(&err);
        goto done;
    }

    /* one sweep at a time in a folder: a second one would start the same runs */
    int lock = open(ctx.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0) {
        me_error_set(&err, ME_ERR_USAGE, "%s: another minienc sweep is running in this folder; expected one at a time",
                     ctx.dir);
        if (lock >= 0) close(lock);
        code = cli_fail(&err);
        goto done;
    }
    double *wall = malloc((size_t)ctx.n * sizeof *wall);
    char csv[ME_PATH_MAX + 32];
    snprintf(csv, sizeof csv, "%s/sweep.csv", ctx.dir);
    if (!wall) st = me_error_set(&err, ME_ERR_NOMEM, "out of memory");
    for (int k = 0; wall && k < ctx.n; k++) wall[k] = NAN;
    me_error werr;
    if (wall && me_sweep_csv_read_wall(&ctx.s, csv, wall, &werr) != ME_OK)
        fprintf(stderr, "minienc: warning: %s (earlier wall times are not carried over)\n", werr.msg);
    for (int k = 0; wall && k < ctx.n; k++) {
        ctx.runs[k].wall = wall[k];
        if (ctx.runs[k].state == ME_SWEEP_DONE || ctx.runs[k].state == ME_SWEEP_RESUME) refresh_summary(&ctx.runs[k]);
    }
    free(wall);
    if (!st) st = write_csv(&ctx, &err);
    if (st) {
        close(lock);
        code = cli_fail(&err);
        goto done;
    }
    ctx.tty = isatty(2);
    if (todo == 0) {
        fprintf(stderr, "minienc: sweep %s: all %d runs are finished; nothing to do (results in %s)\n", ctx.dir, ctx.n,
                csv);
        close(lock);
        goto done;
    }
    char logs[ME_PATH_MAX + 32];
    snprintf(logs, sizeof logs, "%s/logs", ctx.dir);
    if ((st = me_file_mkdir_p(logs, &err))) {
        close(lock);
        code = cli_fail(&err);
        goto done;
    }
    int running = 0, failed = 0, stopped = 0, next = 0, stopping = 0, forced = 0;
    if (jobs > todo) jobs = todo;
    fprintf(stderr, "minienc: sweep %s: %d run%s, %d finished, %d to run, %ld at a time (%s)\n", ctx.dir, ctx.n,
            ctx.n == 1 ? "" : "s", n_done, todo, jobs, threads_text);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    double t0 = me_now_s(), last_shown = 0;
    int changed = 1;
    while (running > 0 || (!stopping && next < ctx.n)) {
        if (signals_seen > 0 && !stopping) {
            stopping = 1;
            for (int k = 0; k < ctx.n; k++)
                if (ctx.runs[k].pid > 0) kill(ctx.runs[k].pid, SIGTERM);
        }
        if (signals_seen > 1 && !forced) {
            forced = 1;
            for (int k = 0; k < ctx.n; k++)
                if (ctx.runs[k].pid > 0) kill(ctx.runs[k].pid, SIGINT);
        }
        if (!stopping && running < jobs && next < ctx.n) {
            run_slot *r = &ctx.runs[next++];
            if (r->state == ME_SWEEP_DONE) continue;
            char **av;
            if ((st = me_sweep_train_argv(&ctx.s, (int)(r - ctx.runs), exe, r->abs_dir, r->state, threads, &av, &err)) ||
                (r->pid = spawn(exe, av, r->log, &err)) < 0) {
                if (!st) me_sweep_argv_free(av);
                r->pid = 0;
                say(&ctx, "minienc: error: %s", err.msg);
                code = me_status_exit_code(err.status);
                stopping = 1; /* the machine cannot start trainings: stop the others cleanly */
                for (int k = 0; k < ctx.n; k++)
                    if (ctx.runs[k].pid > 0) kill(ctx.runs[k].pid, SIGTERM);
                st = ME_OK;
                continue;
            }
            me_sweep_argv_free(av);
            r->t_start = me_now_s();
            r->status = "running";
            running++;
            if (r->state == ME_SWEEP_RESUME)
                say(&ctx, "[%d/%d] resume %s from step %lld", (int)(r - ctx.runs) + 1, ctx.n, r->name, (long long)r->step);
            else
                say(&ctx, "[%d/%d] start  %s", (int)(r - ctx.runs) + 1, ctx.n, r->name);
            changed = 1;
            continue;
        }
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            run_slot *r = NULL;
            for (int k = 0; k < ctx.n && !r; k++)
                if (ctx.runs[k].pid == pid) r = &ctx.runs[k];
            if (!r) continue;
            r->pid = 0;
            running--;
            double took = me_now_s() - r->t_start;
            r->wall = (isnan(r->wall) ? 0 : r->wall) + took;
            refresh_summary(r);
            int k = (int)(r - ctx.runs) + 1;
            char took_s[32];
            fmt_duration(took_s, sizeof took_s, took);
            int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            if (rc == 0 && r->have_sum) {
                r->status = "done";
                r->progress = r->steps;
                n_done++;
                char acc[256] = "", at[64] = "";
                if (!isnan(r->sum.valid_acc)) {
                    if (r->sum.acc_target_step >= 0)
                        snprintf(at, sizeof at, ", %.0f%% at step %lld", 100 * ME_REPORT_ACC_TARGET,
                                 (long long)r->sum.acc_target_step);
                    snprintf(acc, sizeof acc, ", validation accuracy %.2f%%%s, loss %.4g", 100 * r->sum.valid_acc, at,
                             r->sum.valid_loss);
                }
                say(&ctx, "[%d/%d] done   %s in %s: %lld steps, training loss %.4g%s", k, ctx.n, r->name, took_s,
                    (long long)r->sum.steps, r->sum.train_loss, acc);
            } else if (rc == 130 || (stopping && rc != 0) || (rc == 0 && !r->have_sum)) {
                /* stopped: by our signal (a training signalled before it could catch it ends with the
                 * signal, having saved nothing) or from outside */
                r->status = "interrupted";
                stopped++;
                say(&ctx, "[%d/%d] stopped %s at step %lld, saved", k, ctx.n, r->name,
                    (long long)(r->have_sum ? r->sum.steps : 0));
            } else {
                char last[1024];
                log_last_line(r->log, last, sizeof last);
                r->status = "failed";
                failed++;
                say(&ctx, "[%d/%d] failed %s (exit %d): %s (log: %s)", k, ctx.n, r->name, rc, last[0] ? last : "no output",
                    r->log);
            }
            me_error cerr;
            if (write_csv(&ctx, &cerr)) say(&ctx, "minienc: error: %s", cerr.msg);
            changed = 1;
            continue;
        }
        if (pid < 0 && errno == ECHILD) break; /* nothing left to wait for */
        double now = me_now_s();
        if (changed || (now - last_shown >= (ctx.tty ? 0.5 : 60.0))) {
            for (int k = 0; k < ctx.n; k++)
                if (ctx.runs[k].pid > 0) ctx.runs[k].progress = log_progress(ctx.runs[k].log, ctx.runs[k].progress);
            int waiting = 0;
            for (int k = next; k < ctx.n; k++) waiting += ctx.runs[k].state != ME_SWEEP_DONE;
            if (!stopping && (ctx.tty || changed)) show_progress(&ctx, t0, n_done, failed, running, waiting);
            last_shown = now;
            changed = 0;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    clear_progress(&ctx);
    me_error cerr;
    if (write_csv(&ctx, &cerr)) {
        fprintf(stderr, "minienc: error: %s\n", cerr.msg);
        if (!code) code = me_status_exit_code(cerr.status);
    }
    close(lock);
    char el[32];
    fmt_duration(el, sizeof el, me_now_s() - t0);
    if (stopping && signals_seen > 0) {
        fprintf(stderr, "minienc: sweep interrupted after %s: %d of %d runs finished, %d stopped and saved; run the same "
                "command again to continue\n", el, n_done, ctx.n, stopped);
        code = 130;
    } else if (code) {
        /* a training could not be started: already said */
    } else if (failed || stopped) {
        fprintf(stderr, "minienc: sweep %s: %d of %d runs finished, %d failed, %d interrupted (results in %s)\n", ctx.dir,
                n_done, ctx.n, failed, stopped, csv);
        code = 1;
    } else {
        fprintf(stderr, "minienc: sweep done in %s: %d runs in %s, results in %s; compare them with: minienc compare "
                "%s\n", el, ctx.n, ctx.dir, csv, ctx.dir);
    }
done:
    free_ctx(&ctx);
    return code;
}

const cli_command cli_sweep = {
    .name = "sweep", .args = "CONFIG", .args_what = "CONFIG", .min_args = 1, .max_args = 1,
    .options = sweep_options, .n_options = N_SWEEP_OPTS, .run = cmd_sweep,
    .summary = "Train every combination of the grids' values (x seeds 1..N) into runs/NAME/<key>=<value>,...[,seed=<s>],\n"
               "J at a time; run it again to skip finished runs and resume interrupted ones. Writes\n"
               "runs/NAME/sweep.ini (the record), sweep.csv (one row per run) and logs/<run>.log.",
};
