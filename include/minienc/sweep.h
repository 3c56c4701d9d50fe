/* Sweeps: one training run per point of a grid of config values (times seeds), each an ordinary run
 * directory under the sweep's folder, plus the sweep's own record and results there.
 *
 *   SWEEP_DIR/sweep.ini          the record (me_sweep_record_write): the grid, the seed count and the
 *                                base config every run starts from; a later call into the same folder
 *                                with another grid, seed count or base is refused, naming what differs
 *   SWEEP_DIR/<run>/             one run directory per point (see train.h), written by `minienc train`
 *   SWEEP_DIR/sweep.csv          one row per run (me_sweep_csv_text)
 *
 * Run names: "<label>=<value>" for each grid axis in the order given, joined by ',', then ",seed=<s>"
 * when the sweep has seeds: "norm_first=false,seed=1". label is the key's name within its section
 * ("norm_first"; the full "section.key" if two sections ever share a name), value the text config.ini
 * writes for it ("true", "0.001"), so that `1e-3` and `0.001` are one run. Bytes outside
 * [A-Za-z0-9._+-] are written %XX (uppercase hex), so a name is a single path component that cannot be
 * "." or "..", and two distinct values never share a name. Runs are ordered with the first axis
 * varying slowest and the seed fastest.
 *
 * A run is built exactly as `minienc train CONFIG --set ... --set <grid values> --set train.seed=<s>
 * --set log.out_dir=SWEEP_DIR/<run>` builds it: defaults, the file, the sweep's --set values in order,
 * then the point's values (me_sweep_run_config). me_sweep_train_argv gives that command line, which
 * the CLI both runs and prints for --plan.
 *
 * Depends on config, checkpoint and report (a run's results); prints nothing, runs nothing. */
#ifndef MINIENC_SWEEP_H
#define MINIENC_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include "minienc/config.h"
#include "minienc/report.h"
#include "minienc/status.h"

#define ME_SWEEP_MAX_AXES 16
#define ME_SWEEP_MAX_SEEDS 1000
#define ME_SWEEP_MAX_RUNS 10000
#define ME_SWEEP_NAME_MAX 255 /* bytes in a run name: one path component */
#define ME_SWEEP_KEY_MAX 48

typedef struct {
    char key[ME_SWEEP_KEY_MAX];   /* "model.norm_first" */
    char label[ME_SWEEP_KEY_MAX]; /* "norm_first": in run names and sweep.csv's columns */
    int n;                        /* values, >= 1 */
    char **values;                /* [n] as config.ini writes them, distinct, in the order given; owned */
} me_sweep_axis;

typedef struct {
    char config[ME_PATH_MAX]; /* the CONFIG file, absolute */
    int n_sets;
    char **sets;              /* [n_sets] the sweep's --set values, in order; owned */
    me_config *base;          /* defaults + CONFIG + sets, validated, paths absolute, log.out_dir unset;
                                 owned */
    int n_axes;
    me_sweep_axis axes[ME_SWEEP_MAX_AXES];
    int seeds; /* 0: the runs keep the base's train.seed; N: every point runs with train.seed = 1..N */
} me_sweep;

/* Loads the base config (config_path, then sets[0..n_sets) in order) and validates it. Refuses a --set
 * of log.out_dir (a sweep places its runs itself). Release with me_sweep_free (also after a failure). */
me_status me_sweep_init(me_sweep *s, const char *config_path, const char *const *sets, int n_sets, me_error *err);
void me_sweep_free(me_sweep *s);

/* Adds an axis from "SECTION.KEY=V1,V2,...". Refuses (ME_ERR_USAGE, naming the --grid) an unknown key,
 * a value the config refuses, an empty or repeated value (after canonical formatting), a key already on
 * another axis or given by one of the sweep's --set values, log.out_dir and train.threads (set per run
 * from --jobs), train.seed when seeds are set, more than ME_SWEEP_MAX_AXES axes or ME_SWEEP_MAX_RUNS
 * runs. */
me_status me_sweep_add_axis(me_sweep *s, const char *spec, me_error *err);

/* Seeds 1..n for every point (1 <= n <= ME_SWEEP_MAX_SEEDS); refused when train.seed is on an axis. */
me_status me_sweep_set_seeds(me_sweep *s, int n, me_error *err);

/* Number of runs: the product of the axes' sizes times max(seeds, 1). */
int me_sweep_n_runs(const me_sweep *s);

/* The point of run k: the value index on each axis (idx[n_axes]) and its seed (0 without seeds). */
void me_sweep_point(const me_sweep *s, int k, int *idx, int *seed);

/* Name of run k (see the top of this header) into buf[cap]. ME_ERR_USAGE when it would be longer
 * than ME_SWEEP_NAME_MAX bytes (or cap - 1). */
me_status me_sweep_run_name(const me_sweep *s, int k, char *buf, size_t cap, me_error *err);

/* The assignments run k adds to the base, "model.norm_first=false", ..., "train.seed=1", into
 * sets[n_axes + 1] (each malloc'ed; the caller frees them); returns how many (n_axes, +1 with seeds),
 * -1 when out of memory. */
int me_sweep_run_sets(const me_sweep *s, int k, char **sets);

/* The full config of run k living in run_dir: defaults, the CONFIG file, the sweep's sets, the point's,
 * log.out_dir = run_dir; validated, paths absolute (as `minienc train` builds it). A point that makes an
 * invalid config (d_model not divisible by n_heads, ...) is refused with the config's message,
 * prefixed with the run's name. cfg is caller-allocated. */
me_status me_sweep_run_config(const me_sweep *s, int k, const char *run_dir, me_config *cfg, me_error *err);

/* ---- the folder ---------------------------------------------------------------------------------------- */

/* The sweep's folder: "runs/NAME" with name, else "runs/<CONFIG's file name without .ini>-sweep".
 * ME_ERR_USAGE for a name that is not a single path component ("", ".", "..", a '/'). */
me_status me_sweep_default_dir(const char *config_path, const char *name, char *buf, size_t cap, me_error *err);

/* Writes SWEEP_DIR/sweep.ini atomically (the folder must exist): a [sweep] section (config, set and grid
 * lines, seeds, runs) followed by the base config as config.ini writes it. */
me_status me_sweep_record_write(const me_sweep *s, const char *path, me_error *err);

/* Reads a record back into *s (config, the set values, axes, seeds, base), so that its run names and
 * configs come from the same functions; strict: ME_ERR_FORMAT "PATH: ..." for anything it did not write,
 * ME_ERR_IO when missing. Release with me_sweep_free (also after a failure). */
me_status me_sweep_record_read(me_sweep *s, const char *path, me_error *err);

/* ME_OK when the recorded sweep (read from path) is the same sweep as s: the same axes (keys and values,
 * in order), the same seed count and the same base config (every key but ME_KEY_RUN and ME_KEY_MACHINE
 * ones). Otherwise ME_ERR_EXISTS, saying what differs and that another NAME keeps both. */
me_status me_sweep_record_check(const me_sweep *recorded, const me_sweep *s, const char *path, me_error *err);

/* ---- runs on disk -------------------------------------------------------------------------------------- */

typedef enum {
    ME_SWEEP_NEW = 0,   /* no directory, or an empty one: train it */
    ME_SWEEP_RESTART,   /* it started (config.ini) but saved nothing trained (no checkpoint): train it
                           afresh with --force */
    ME_SWEEP_RESUME,    /* a checkpoint before train.steps: --resume it */
    ME_SWEEP_DONE       /* a checkpoint at train.steps: skip it */
} me_sweep_state;

/* What is in run_dir for a run whose config is cfg (me_sweep_run_config), and the checkpoint's step
 * (-1 without one). A directory whose config.ini trains another run (any key but ME_KEY_RUN and
 * ME_KEY_MACHINE ones differs), or that has files but no config.ini, is refused with ME_ERR_EXISTS: a
 * sweep never overwrites what it did not write. */
me_status me_sweep_run_state(const char *run_dir, const me_config *cfg, me_sweep_state *state, int64_t *step,
                             me_error *err);

/* The command that brings run k to its end from state (not ME_SWEEP_DONE), as a NULL-terminated argv
 * (*argv and each string malloc'ed; release with me_sweep_argv_free):
 *   NEW:      EXE train CONFIG [--set S]... --set <point>... --set log.out_dir=RUN_DIR --set train.threads=T
 *   RESTART:  the same, then --force
 *   RESUME:   EXE train --resume RUN_DIR --set train.threads=T
 * T = threads (0: all cores). */
me_status me_sweep_train_argv(const me_sweep *s, int k, const char *exe, const char *run_dir, me_sweep_state state,
                              int threads, char ***argv, me_error *err);
void me_sweep_argv_free(char **argv);

/* arg quoted for a POSIX shell (unchanged when it only holds [A-Za-z0-9_@%+=:,./-], else in single
 * quotes with each ' written '\''), malloc'ed; NULL when out of memory. */
char *me_sweep_shell_quote(const char *arg);

/* ---- sweep.csv ----------------------------------------------------------------------------------------- */

/* One row: the run and what is known of it. */
typedef struct {
    const char *name;          /* run name (the directory under the sweep's folder) */
    int k;                     /* run index in the sweep */
    const char *status;        /* "done", "interrupted", "failed", "running", "not started" */
    const me_run_summary *sum; /* NULL when the run has no results yet */
    double wall_s;             /* seconds the sweep spent training it; NaN when unknown */
} me_sweep_row;

/* sweep.csv's text (malloc'ed, the caller frees it): the header
 *     run,<label>...,seed,status,steps,train_loss,valid_loss,best_valid_loss,valid_acc,best_valid_acc,
 *     acc99_step,wall_s,<norm>.gamma_drift,<norm>.beta_drift,...
 * then rows[0..n) in order. <label> is each axis's label; seed the run's train.seed; steps the last
 * step in metrics.csv; train_loss the loss of that step; valid_* the last evaluation and best_* the
 * lowest loss / highest accuracy over all evaluations; acc99_step the first evaluated step with
 * validation accuracy >= ME_REPORT_ACC_TARGET; wall_s seconds of training; then, per LayerNorm (in the
 * first run's history order, then any other run's new ones), the L2 drift of γ and β from their initial
 * values (<norm> as in the charts: "layers.0.norm1", "norm"). Fields that are unknown or not defined for
 * a run are empty; numbers as %.9g; a field with ',' or '"' is quoted ("..." with "" inside), as RFC
 * 4180 does. */
char *me_sweep_csv_text(const me_sweep *s, const me_sweep_row *rows, int n, me_error *err);

/* Reads the wall_s column of an earlier sweep.csv into wall[k] for each run k of s found in it by
 * name (other entries are left as they are). A missing file is not an error (ME_OK, nothing read); a
 * file without the run and wall_s columns is ME_ERR_FORMAT. */
me_status me_sweep_csv_read_wall(const me_sweep *s, const char *path, double *wall, me_error *err);

#endif
