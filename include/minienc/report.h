/* Reports on a finished (or running) training run: PNG charts of the LayerNorm γ/β histories and the
 * training curves, and an "inspect" analysis of how each γ and β moved.
 *
 * A run directory (written by `minienc train`) holds history.safetensors (see history.h) and
 * metrics.csv (see metrics.h). The run name is the directory's base name.
 *
 * Charts (me_report_plots), written atomically into RUN_DIR/plots/, deterministic (same inputs give
 * byte-identical files):
 *   <norm>_trajectories.png  γ and β of one LayerNorm against step: mean line, ±std band, min–max
 *                            envelope and the dimensions that moved most (largest |last − first|)
 *   <norm>_heatmap.png       γ and β as dimension × step heatmaps, coloured around 1 (γ) and 0 (β)
 *   training.png             training/validation loss (log scale) and validation accuracy against step
 * <norm> is the LayerNorm's parameter prefix without a leading "encoder." ("layers.0.norm1", "norm").
 *
 * Code: report.c (the run directory), report_inspect.c (inspect), report_plots.c (charts). Depends on
 * history, metrics and plot; prints nothing. */
#ifndef MINIENC_REPORT_H
#define MINIENC_REPORT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "minienc/history.h"
#include "minienc/metrics.h"
#include "minienc/params.h"
#include "minienc/status.h"

/* A γ whose final |value| is below this counts as "switched off". */
#define ME_REPORT_OFF_THRESHOLD 0.1
#define ME_REPORT_DEFAULT_TOP 5
/* Outlier γ dimensions: |γ_d − mean(γ)| > sigma · std(γ), mean and population std over the tensor's
 * dimensions at one snapshot (cf. Kovaleva et al. 2021, "BERT Busters": a few LayerNorm dimensions of
 * very high magnitude, at the same dimension across layers). */
#define ME_REPORT_DEFAULT_SIGMA 3.0

/* ---- a run's results ------------------------------------------------------------------------------ */

/* The validation accuracy a run is said to have learned its task at (the step it first gets there). */
#define ME_REPORT_ACC_TARGET 0.99

/* What a run directory says about how its run went, from metrics.csv and history.safetensors. */
typedef struct {
    int64_t steps;                /* step of metrics.csv's last row (0 when it has none) */
    double train_loss;            /* the loss at that step (one batch); NaN without rows */
    double valid_loss, valid_acc; /* the last evaluation; NaN without one */
    double best_valid_loss, best_valid_acc; /* lowest loss and highest accuracy over the evaluations */
    int64_t acc_target_step;      /* first evaluated step with valid_acc >= ME_REPORT_ACC_TARGET, -1 if none */
    int n_norms;                  /* LayerNorms in the history (0 when the run has none yet) */
    me_history_norm *norms;       /* [n_norms], owned */
    double *gamma_drift, *beta_drift; /* [n_norms] L2 distance of the last snapshot from the first; NaN for
                                         a missing tensor */
} me_run_summary;

/* Summarises RUN_DIR (metrics.csv required, history.safetensors when present). A missing metrics.csv is
 * ME_ERR_USAGE; malformed files ME_ERR_FORMAT naming them. Release with me_run_summary_free (also after
 * a failure). */
me_status me_run_summary_read(me_run_summary *s, const char *run_dir, me_error *err);
/* The same from a metrics table and a history (h may be NULL). */
me_status me_run_summary_make(me_run_summary *s, const me_metrics *m, const me_history *h, me_error *err);
void me_run_summary_free(me_run_summary *s);

/* ---- charts --------------------------------------------------------------------------------------- */

/* Paths of the files written, in the order the charts are listed; released with me_report_files_free. */
typedef struct {
    int n;
    char **paths; /* [n], each malloc'ed; "RUN_DIR/plots/NAME.png" */
} me_report_files;

void me_report_files_free(me_report_files *f);
/* Appends (a copy of) path to f. ME_ERR_NOMEM when it cannot grow. */
me_status me_report_files_add(me_report_files *f, const char *path, me_error *err);

/* Reads RUN_DIR/history.safetensors and RUN_DIR/metrics.csv, creates RUN_DIR/plots/ if needed and
 * writes every chart listed at the top of this header, its text in the default font
 * (me_font_default_path()). A run directory without those files is refused with ME_ERR_USAGE; a
 * malformed one with ME_ERR_FORMAT (history or metrics, naming the file); a failed write with ME_ERR_IO.
 * When the font cannot be loaded (missing, unreadable, not a font), nothing is drawn and the status is
 * ME_ERR_FONT, with one line naming the font, the package that installs it (ME_FONT_PACKAGE) and
 * 'minienc plot RUN_DIR': training reports that as a warning and goes on. */
me_status me_report_plots(const char *run_dir, me_error *err);
/* The same, also listing the written files in *written (may be NULL); *written is filled even on
 * failure (the charts that were written) and must be released with me_report_files_free. The charts
 * are drawn in parallel on the kernels' threads (minienc/ops.h); the bytes do not depend on it. */
me_status me_report_plots_list(const char *run_dir, me_report_files *written, me_error *err);
/* The same with the font at font_path instead of the default. */
me_status me_report_plots_font(const char *run_dir, const char *font_path, me_report_files *written, me_error *err);

/* ---- inspect -------------------------------------------------------------------------------------- */

/* One dimension of a tensor. The fastest change is the largest |x[s] − x[s−1]| / (step[s] − step[s−1])
 * over consecutive snapshots; fastest_step is step[s] (the first snapshot showing the change) and
 * fastest_from step[s−1]. With a single snapshot both are -1 and the rate 0. */
typedef struct {
    size_t dim;
    double start, end; /* first and last snapshot */
    int64_t fastest_from, fastest_step;
    double fastest_rate; /* |Δ| per step */
} me_report_dim;

/* A γ dimension that is an outlier at the last snapshot. */
typedef struct {
    size_t dim;
    double value;       /* γ_d at the last snapshot */
    double z;           /* (γ_d − mean) / std there, in standard deviations */
    int64_t first_step; /* step of the first snapshot at which it was beyond sigma · std */
} me_report_outlier;

/* A dimension that is an outlier in two or more LayerNorms (γ tensors of the same size). */
typedef struct {
    size_t dim;
    int n;        /* LayerNorms */
    int *tensors; /* [n] indices into me_report.t, in history order, owned */
} me_report_shared;

typedef struct {
    char name[ME_NAME_MAX]; /* "encoder.layers.0.norm1.weight" */
    int is_gamma;
    size_t dim;                          /* d_model */
    double mean_start, std_start;        /* first snapshot; population std */
    double mean_end, std_end;            /* last snapshot */
    double l2_drift;                     /* ||x_last − x_first||_2 */
    int n_top;                           /* min(top_k, dim) */
    me_report_dim *top;                  /* [n_top] by |end − start| descending, ties by lower dim */
    size_t n_off;                        /* γ only (0 for β) */
    me_report_dim *off;                  /* [n_off] final |γ| < off_threshold, ascending dim */
    size_t n_outliers;                   /* γ only (0 for β) */
    me_report_outlier *outliers;         /* [n_outliers] at the last snapshot, ascending dim */
} me_report_tensor;

typedef struct {
    char run[256];       /* run name (base name of the run directory), "" when unknown */
    size_t n_snap;
    int64_t first_step, last_step;
    int top_k;
    double off_threshold; /* ME_REPORT_OFF_THRESHOLD */
    double sigma;         /* the outlier threshold in standard deviations */
    int n;
    me_report_tensor *t; /* [n], in history order, owned */
    int n_shared;
    me_report_shared *shared; /* [n_shared] ascending dim, owned */
} me_report;

/* Analyses a history (at least one snapshot, else ME_ERR_FORMAT). top_k >= 1, sigma > 0 (finite).
 * run may be NULL. Release with me_report_free. */
me_status me_report_analyze(me_report *r, const me_history *h, const char *run, int top_k, double sigma,
                            me_error *err);
/* Reads RUN_DIR/history.safetensors and analyses it (missing file: ME_ERR_USAGE). */
me_status me_report_inspect(me_report *r, const char *run_dir, int top_k, double sigma, me_error *err);

/* The outlier dimensions of history tensor i at its last snapshot (see ME_REPORT_DEFAULT_SIGMA), in
 * ascending dim, into *out (malloc'ed, the caller frees it; NULL when there are none) and *n. A tensor
 * whose dimensions are all equal (std 0, e.g. γ at initialisation) has none. */
me_status me_report_outliers(const me_history *h, int i, double sigma, me_report_outlier **out, size_t *n,
                             me_error *err);
void me_report_free(me_report *r);

/* Writes the analysis as a readable text table to f (which it does not close). Returns ME_ERR_IO if
 * writing failed. */
me_status me_report_print(const me_report *r, FILE *f, me_error *err);
/* The analysis as a JSON object; the caller releases it with cJSON_Delete. NULL when out of memory.
 * {"run", "snapshots", "first_step", "last_step", "top_k", "switched_off_threshold", "sigma",
 *  "tensors": [{"name", "kind": "gamma"|"beta", "d_model", "mean_start", "std_start", "mean_end",
 *               "std_end", "l2_drift", "top_shown", "top": [{"dim", "start", "end", "change",
 *               "fastest_step", "fastest_from_step", "fastest_rate"}], "switched_off": [{"dim", "start",
 *               "end"}], "outliers": [{"dim", "gamma", "z", "first_step"}]}],
 *  "shared_outliers": [{"dim", "layernorms": ["encoder.layers.0.norm1.weight", ...]}]}
 * ("switched_off" and "outliers" only for γ). */
cJSON *me_report_json(const me_report *r);

/* Base name of a run directory ("runs/demo/" -> "demo"; "." -> the current directory's name) into buf. */
void me_report_run_name(const char *run_dir, char *buf, size_t cap);

#endif
