/* Comparing runs: run directories (a sweep folder stands for all its runs) loaded with their config,
 * metrics and γ/β history; grouped by config (runs whose configs differ only in train.seed form one
 * group, or the runs that agree on chosen keys); each group's figures as the mean over its runs with a
 * min–max band; a text table and JSON; the charts (compare_plots.c).
 *
 * Across runs of different sizes (d_model, n_layers, final_norm) every figure is drawn for what is
 * defined for the runs in it: a LayerNorm position only for the groups that have it, the outlier map
 * only for groups whose runs share d_model; what was left out, and why, is in me_compare.notes.
 * Statistics over a group's runs: curves at the steps all of them have; "± std" is the sample standard
 * deviation (n − 1), 0 for one run.
 *
 * Depends on config, metrics, history, report, sweep and plot; prints nothing. */
#ifndef MINIENC_COMPARE_H
#define MINIENC_COMPARE_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "minienc/config.h"
#include "minienc/history.h"
#include "minienc/metrics.h"
#include "minienc/report.h"
#include "minienc/status.h"

#define ME_COMPARE_MAX_BY 16

typedef struct {
    char dir[ME_PATH_MAX];
    char name[256];    /* the directory's base name */
    me_config *cfg;    /* config.ini, else the config the history stores; owned */
    me_metrics metrics;
    int has_hist;
    me_history hist;   /* when has_hist */
    me_run_summary sum;
    me_report rep;     /* γ/β analysis with outliers at the comparison's sigma (n = 0 without a history) */
    int group;
} me_compare_run;

typedef struct {
    char label[512]; /* what tells it apart: "norm_first=true" (see me_compare_group_by) */
    int n;           /* runs */
    int *runs;       /* [n] indices into me_compare.runs, in load order */
} me_compare_group;

typedef struct {
    double sigma;
    int n_runs;
    me_compare_run *runs;
    int n_groups;
    me_compare_group *groups;
    int n_by;
    char (*by)[48];       /* the keys that tell the groups apart (the --by keys, or those that differ) */
    int n_norms;
    char (*norms)[ME_NAME_MAX]; /* LayerNorm positions over all runs, in depth order ("layers.0.norm1", ...) */
    int n_notes;
    char **notes;         /* what was left out and why, one line each */
} me_compare;

/* Loads each path: a sweep folder (sweep.ini: its runs in the sweep's order; runs not started yet are
 * left out with a note) or a run directory (metrics.csv). A run without history.safetensors is kept
 * for the curves and noted. The same directory given twice is loaded once. Anything else is refused:
 * ME_ERR_USAGE "PATH: neither a run directory ... nor a sweep folder ...". sigma > 0: the outlier rule
 * (report.h). Groups are not formed yet: call me_compare_group_by. Release with me_compare_free (also
 * after a failure). */
me_status me_compare_load(me_compare *c, const char *const *paths, int n_paths, double sigma, me_error *err);
void me_compare_free(me_compare *c);

/* Groups the runs: with n_by = 0, runs whose configs agree on every key but train.seed and the
 * ME_KEY_RUN / ME_KEY_MACHINE ones form one group; otherwise runs that agree on the keys by[0..n_by)
 * ("model.norm_first"; an unknown key is ME_ERR_USAGE naming the nearest). Groups are in the order of
 * their first run. Labels name the keys whose values differ between groups ("norm_first=true, lr=0.001",
 * a key by its name within its section); a single group of one run is labelled with the run's name,
 * of several runs "all N runs". */
me_status me_compare_group_by(me_compare *c, const char *const *by, int n_by, me_error *err);

/* Adds a line to c->notes (once: a line already there is not repeated). */
void me_compare_note(me_compare *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- figure data ---------------------------------------------------------------------------------------- */

/* One group's curve: the mean over its runs with the min–max band, at the steps all of them have. */
typedef struct {
    size_t n;
    double *x, *mean, *lo, *hi; /* [n] each, owned (one block: free x) */
    int runs;                   /* runs it is made of (0: not defined for this group) */
} me_compare_series;

void me_compare_series_free(me_compare_series *s);

typedef enum {
    ME_COMPARE_TRAIN_LOSS = 0, /* per step; smoothed per run with a centred moving average of `smooth` steps */
    ME_COMPARE_VALID_LOSS,     /* at evaluations */
    ME_COMPARE_VALID_ACC       /* at evaluations */
} me_compare_curve_kind;

/* A training curve of group g. smooth: window in steps for ME_COMPARE_TRAIN_LOSS (1 = raw). */
me_status me_compare_curve(const me_compare *c, int g, me_compare_curve_kind kind, int smooth, me_compare_series *out,
                           me_error *err);

typedef enum {
    ME_COMPARE_GAMMA_MEAN = 0, /* mean of γ over the dimensions */
    ME_COMPARE_GAMMA_MAXDEV,   /* max_d |γ_d − 1| */
    ME_COMPARE_GAMMA_DRIFT,    /* ||γ − γ_first||_2 */
    ME_COMPARE_BETA_MEAN,      /* mean of β */
    ME_COMPARE_BETA_MAXABS,    /* max_d |β_d| */
    ME_COMPARE_BETA_DRIFT      /* ||β − β_first||_2 */
} me_compare_norm_stat;

/* A γ/β summary of LayerNorm position norm ("layers.0.norm1") against step for group g, at the snapshot
 * steps all its runs have. out->runs = 0 when a run of the group has no such LayerNorm (or no history). */
me_status me_compare_norm_curve(const me_compare *c, int g, const char *norm, me_compare_norm_stat stat,
                                me_compare_series *out, me_error *err);

/* Mean, min, max and sample std over group g's runs of one number per run; NaN values are skipped. */
typedef struct {
    int n; /* runs with a value */
    double mean, sd, lo, hi;
} me_compare_stat;

/* The final L2 drift of γ (gamma = 1) or β of LayerNorm position norm over group g (n = 0 when not
 * defined for every run of the group). */
me_compare_stat me_compare_final_drift(const me_compare *c, int g, const char *norm, int gamma);

/* Group g's outlier map over its LayerNorm positions (rows, in me_compare.norms order, those the group
 * has) × dimensions: the share of the group's runs in which γ_d of that LayerNorm is an outlier.
 * *values [rows * dims] and *rows_out (indices into me_compare.norms) are malloc'ed (caller frees).
 * *rows = 0 (and a note from the caller) when the group's runs differ in d_model or have no history. */
me_status me_compare_outlier_map(const me_compare *c, int g, float **values, int **rows_out, int *rows, int *dims,
                                 me_error *err);

/* ---- results ------------------------------------------------------------------------------------------ */

/* The table: per group its runs, final validation accuracy mean ± std, steps to ME_REPORT_ACC_TARGET
 * (mean ± std over the runs that got there, and how many did), final training loss, per LayerNorm the
 * final drift of γ and β, the outlier γ dimensions (with the share of runs in which each is one) and
 * the dimensions that are outliers in two or more LayerNorms; then the notes. ME_ERR_IO on a write error. */
me_status me_compare_print(const me_compare *c, FILE *f, me_error *err);

/* The same as JSON (caller frees with cJSON_Delete; NULL when out of memory):
 * {"sigma", "band": "min-max", "spread": "sample std", "by": [keys],
 *  "groups": [{"label", "values": {key: value}, "runs": [names],
 *              "final_valid_acc": STAT, "final_valid_loss": STAT, "final_train_loss": STAT,
 *              "acc99_step": STAT + {"reached", "of"},
 *              "drift": [{"layernorm", "gamma": STAT, "beta": STAT}],
 *              "outliers": [{"layernorm", "dims": [{"dim", "runs"}]}],
 *              "shared_outliers": [{"dim", "runs"}]}],
 *  "notes": [lines]}
 * STAT = {"n", "mean", "std", "min", "max"} (null numbers when n = 0). */
cJSON *me_compare_json(const me_compare *c);

/* Writes the charts into out_dir (created if needed), listing them in *written (may be NULL; release
 * with me_report_files_free):
 *   curves.png          training loss (log scale, moving average) and validation accuracy against step
 *   <norm>.png          per LayerNorm position: mean γ, max |γ − 1|, γ drift; mean β, max |β|, β drift
 *   drift.png           final L2 drift of γ and β per LayerNorm position, across the depth
 *   outliers.png        per group, LayerNorm position × dimension: share of runs with an outlier γ_d
 * One colour per group, lines the mean over its runs, bands min–max. Charts that leave a group out add a
 * note to c. No font: ME_ERR_FONT naming the package, nothing drawn. */
me_status me_compare_plots(me_compare *c, const char *out_dir, me_report_files *written, me_error *err);

#endif
