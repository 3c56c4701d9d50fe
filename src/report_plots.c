/* Run charts: γ/β trajectories and heatmaps per LayerNorm, and the training curves. */
#include "minienc/report.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minienc/metrics.h"
#include "minienc/plot.h"

#include "file.h"
#include "internal.h"
#include "report_internal.h"

#define TRAJ_W 1400
#define TRAJ_PANEL_H 560
#define TOP_SHOWN 4

static const me_rgb COL_MEAN = {31, 119, 180};

/* Shared by the figures, which are drawn in parallel: read-only while they are drawn. */
typedef struct {
    char run[256];
    char plots[4096];
    me_font font;
} plot_ctx;

/* The LayerNorm parameter's letter: γ (scale) or β (offset). */
static const char *greek(int gamma) { return gamma ? "γ" : "β"; }

/* Writes the figure to plots/name; on success *written (malloc'ed) is its path. */
static me_status save_png(const plot_ctx *pc, const me_canvas *cv, const char *name, char **written,
                          me_error *err) {
    char *path = report_join(pc->plots, name);
    if (!path) return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory");
    me_status st = me_canvas_write_png(cv, path, err);
    if (st == ME_OK) *written = path;
    else free(path);
    return st;
}

/* Decimals that show a change of size delta with about three significant digits (2..6). */
static int decimals_for(double delta) {
    if (!(delta > 0) || !isfinite(delta)) return 2;
    int dec = 2 - (int)floor(log10(delta));
    return dec < 2 ? 2 : dec > 6 ? 6 : dec;
}

/* v with dec decimals, never "-0.00". */
static const char *fmt_fixed(char *buf, size_t cap, double v, int dec) {
    if (fabs(v) < 0.5 * pow(10.0, -dec)) v = 0.0;
    snprintf(buf, cap, "%.*f", dec, v);
    return buf;
}

/* "weight" for "PREFIX.weight"; the whole name otherwise. */
static const char *param_suffix(const char *name, const char *prefix) {
    size_t n = strlen(prefix);
    return strncmp(name, prefix, n) == 0 && name[n] == '.' ? name + n + 1 : name;
}

/* Trajectory panel for history tensor i: mean ± std band, min–max envelope, the dimensions that moved
 * most. steps: [n_snap]. */
static me_status trajectory_panel(const plot_ctx *pc, me_canvas *cv, me_rect r, const me_history *h, int i,
                                  const char *prefix, const double *steps, me_error *err) {
    size_t S = h->n_snap, D = h->dim[i];
    size_t k = D / 4 < TOP_SHOWN ? D / 4 : TOP_SHOWN;
    if (k < 1) k = 1;
    double *buf = malloc(sizeof(double) * S * (5 + k));
    size_t idx[TOP_SHOWN];
    if (!buf) return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory for %zu snapshots", S);
    double *mean = buf, *lo = mean + S, *hi = lo + S, *mn = hi + S, *mx = mn + S, *dims = mx + S;
    for (size_t s = 0; s < S; s++) {
        const float *x = me_history_at(h, i, s);
        double m, sd, a = INFINITY, b = -INFINITY;
        me_mean_std(x, D, &m, &sd);
        for (size_t d = 0; d < D; d++) {
            a = fmin(a, x[d]);
            b = fmax(b, x[d]);
        }
        mean[s] = m;
        lo[s] = m - sd;
        hi[s] = m + sd;
        mn[s] = a;
        mx[s] = b;
    }
    const float *first = me_history_at(h, i, 0), *last = me_history_at(h, i, S - 1);
    report_top_moved(first, last, D, k, idx);
    /* Dimensions that did not move at all are not "movers". */
    while (k > 0 && !(fabs((double)last[idx[k - 1]] - first[idx[k - 1]]) > 0)) k--;

    me_line_series series[1 + TOP_SHOWN];
    char labels[TOP_SHOWN][96];
    series[0] = (me_line_series){.label = "mean, ±1 std band, min–max envelope", .color = COL_MEAN, .x = steps,
                                 .y = mean, .n = S, .band_lo = lo, .band_hi = hi, .env_lo = mn, .env_hi = mx};
    static const int palette_pick[TOP_SHOWN] = {1, 3, 2, 4}; /* orange, red, green, purple */
    for (size_t j = 0; j < k; j++) {
        double *y = dims + j * S;
        for (size_t s = 0; s < S; s++) y[s] = me_history_at(h, i, s)[idx[j]];
        char a[32], b[32];
        int dec = decimals_for(fabs((double)last[idx[j]] - first[idx[j]]));
        snprintf(labels[j], sizeof labels[j], "dim %zu  (%s → %s)", idx[j], fmt_fixed(a, sizeof a, first[idx[j]], dec),
                 fmt_fixed(b, sizeof b, last[idx[j]], dec));
        series[1 + j] = (me_line_series){.label = labels[j], .color = me_plot_palette(palette_pick[j]), .x = steps,
                                         .y = y, .n = S};
    }
    char title[400];
    snprintf(title, sizeof title, "%s: %s %s  (%s, d_model %zu, %zu snapshots)", pc->run, prefix,
             greek(h->is_gamma[i]), param_suffix(h->names[i], prefix), D, S);
    me_line_chart spec = {.title = title, .x_title = "step", .y_title = greek(h->is_gamma[i]), .series = series,
                          .n_series = 1 + (int)k, .legend = ME_LEGEND_AUTO};
    me_status st = me_chart_line(cv, &pc->font, r, &spec, NULL, err);
    free(buf);
    return st;
}

/* Colour range for a heatmap: the 99th percentile of |v − center| over all cells (from a 4096-bin
 * histogram, so O(n) and deterministic), so that a few outlying dimensions saturate instead of
 * washing out every other one. *clipped is set when some cells lie beyond it. */
static double robust_range(const float *v, size_t n, double center, int *clipped) {
    double mx = 0;
    size_t finite = 0;
    *clipped = 0;
    for (size_t i = 0; i < n; i++) {
        double dv = fabs(v[i] - center);
        if (isfinite(dv)) {
            finite++;
            if (dv > mx) mx = dv;
        }
    }
    if (!(mx > 0)) return 0; /* nothing moved: the chart picks a tiny range */
    enum { BINS = 4096 };
    size_t *hist = calloc(BINS, sizeof *hist);
    if (!hist) return mx;
    for (size_t i = 0; i < n; i++) {
        double dv = fabs(v[i] - center);
        if (!isfinite(dv)) continue;
        int b = (int)(dv / mx * BINS);
        hist[b < BINS ? b : BINS - 1]++;
    }
    size_t want = (size_t)ceil(0.99 * (double)finite), cum = 0;
    int b = 0;
    for (; b < BINS; b++)
        if ((cum += hist[b]) >= want) break;
    free(hist);
    double r = (double)(b + 1) / BINS * mx;
    if (r >= 0.999 * mx) return mx;
    *clipped = 1;
    return r;
}

/* Snapshot columns of a heatmap. When the steps are evenly spaced (within 1.5x), one column per
 * snapshot. Otherwise the step axis is resampled to an even grid at the smallest gap (at most 4096
 * columns; not for more than that many snapshots), each column holding the latest snapshot at or before its step, so that the x axis is
 * linear in steps. cols[c] = snapshot index, steps_out[c] = its step; returns the column count. */
static size_t heatmap_columns(const int64_t *steps, size_t S, size_t *cols, double *steps_out, size_t cap) {
    int64_t gmin = INT64_MAX, gmax = 0;
    for (size_t s = 1; s < S; s++) {
        int64_t g = steps[s] - steps[s - 1];
        if (g < gmin) gmin = g;
        if (g > gmax) gmax = g;
    }
    if (S < 3 || (double)gmax <= 1.5 * (double)gmin || S > cap) {
        for (size_t s = 0; s < S; s++) {
            cols[s] = s;
            steps_out[s] = (double)steps[s];
        }
        return S;
    }
    double span = (double)(steps[S - 1] - steps[0]);
    size_t C = (size_t)(span / (double)gmin) + 1;
    if (C > cap) C = cap;
    size_t s = 0;
    for (size_t c = 0; c < C; c++) {
        double t = c + 1 == C ? (double)steps[S - 1] : (double)steps[0] + span * (double)c / (double)(C - 1);
        while (s + 1 < S && (double)steps[s + 1] <= t) s++;
        cols[c] = s;
        steps_out[c] = t;
    }
    return C;
}

static me_status heatmap_panel(const plot_ctx *pc, me_canvas *cv, me_rect r, const me_history *h, int i,
                               const char *prefix, const double *steps, me_error *err) {
    (void)steps;
    enum { MAX_RESAMPLED = 4096 };
    size_t S = h->n_snap, D = h->dim[i], cap = S > MAX_RESAMPLED ? S : MAX_RESAMPLED;
    size_t *col = malloc(cap * sizeof *col);
    double *csteps = malloc(cap * sizeof *csteps);
    size_t C = col && csteps ? heatmap_columns(h->steps, S, col, csteps, MAX_RESAMPLED) : 0;
    float *v = C ? malloc(sizeof(float) * C * D) : NULL;
    if (!v) {
        free(col);
        free(csteps);
        return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory for a %zu x %zu heatmap", D, S);
    }
    /* history is [S, D]; the heatmap wants [D, C] (dimension rows, step columns) */
    for (size_t c = 0; c < C; c++) {
        const float *x = me_history_at(h, i, col[c]);
        for (size_t d = 0; d < D; d++) v[d * C + c] = x[d];
    }
    int gamma = h->is_gamma[i], clipped;
    double center = gamma ? 1.0 : 0.0;
    double range = robust_range(v, C * D, center, &clipped);
    char title[400], bar[128];
    snprintf(title, sizeof title, "%s: %s %s  (%s; white = initial value %d)", pc->run, prefix, greek(gamma),
             param_suffix(h->names[i], prefix), gamma ? 1 : 0);
    snprintf(bar, sizeof bar, "%s%s", greek(gamma), clipped ? "  (colour scale clipped at the 99th percentile)" : "");
    me_heatmap_spec spec = {.title = title, .x_title = "step", .y_title = "dimension", .colorbar_title = bar,
                            .values = v, .rows = (int)D, .cols = (int)C, .steps = csteps, .center = center,
                            .range = range};
    me_status st = me_chart_heatmap(cv, &pc->font, r, &spec, NULL, err);
    free(v);
    free(col);
    free(csteps);
    return st;
}

typedef me_status (*panel_fn)(const plot_ctx *, me_canvas *, me_rect, const me_history *, int, const char *,
                              const double *, me_error *);

/* One PNG per LayerNorm: γ above β, each drawn by fn. */
static me_status norm_figure(const plot_ctx *pc, const me_history *h, const me_history_norm *g, const double *steps,
                             panel_fn fn, const char *suffix, char **written, me_error *err) {
    int idx[2], n = 0;
    if (g->gamma >= 0) idx[n++] = g->gamma;
    if (g->beta >= 0) idx[n++] = g->beta;
    me_canvas cv;
    me_status st = me_canvas_init(&cv, TRAJ_W, TRAJ_PANEL_H * n + (n == 1 ? 60 : 0), err);
    if (st) return st;
    me_rect all = me_canvas_rect(&cv);
    for (int p = 0; p < n && st == ME_OK; p++) st = fn(pc, &cv, me_plot_grid_cell(all, n, 1, p, 0), h, idx[p], g->prefix, steps, err);
    if (st == ME_OK) {
        char name[ME_NAME_MAX + 32];
        snprintf(name, sizeof name, "%s_%s.png", g->stem, suffix);
        st = save_png(pc, &cv, name, written, err);
    }
    me_canvas_free(&cv);
    return st;
}

/* Rows with a value in col, compacted into xs/ys; returns their count. Lines join evaluations rather
 * than breaking at every step without one. */
static size_t compact(const me_metrics *m, const double *col, double *xs, double *ys) {
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        if (!isnan(col[i])) {
            xs[n] = m->step[i];
            ys[n++] = col[i];
        }
    return n;
}

static me_status training_figure(const plot_ctx *pc, const me_metrics *m, char **written, me_error *err) {
    double *buf = malloc(sizeof(double) * (5 * m->n + 1));
    if (!buf) return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory for %zu metrics rows", m->n);
    double *vx = buf, *vl = vx + m->n, *ax = vl + m->n, *ay = ax + m->n, *smooth = ay + m->n;
    size_t nv = compact(m, m->valid_loss, vx, vl), na = compact(m, m->valid_acc, ax, ay);
    me_canvas cv;
    me_status st = me_canvas_init(&cv, TRAJ_W, 2 * TRAJ_PANEL_H, err);
    if (st) {
        free(buf);
        return st;
    }
    me_rect all = me_canvas_rect(&cv);
    char t1[800], t2[800];
    snprintf(t1, sizeof t1, "%s: loss over %zu steps (log scale)%s", pc->run, m->n, nv ? "" : ", no evaluations yet");
    /* Per-step losses are noisy: above ~200 steps draw them faintly under a centred moving average. */
    size_t win = m->n >= 200 ? m->n / 50 : 0;
    char raw_label[64] = "training loss", avg_label[96];
    me_line_series loss[3];
    int ns = 0;
    if (win) {
        snprintf(raw_label, sizeof raw_label, "training loss (each step)");
        snprintf(avg_label, sizeof avg_label, "training loss (mean of %zu steps)", win | 1);
        me_moving_average(m->loss, m->n, win / 2, smooth);
        loss[ns++] = (me_line_series){.label = raw_label, .color = {174, 199, 232}, .x = m->step, .y = m->loss,
                                      .n = m->n};
        loss[ns++] = (me_line_series){.label = avg_label, .color = COL_MEAN, .x = m->step, .y = smooth, .n = m->n};
    } else {
        loss[ns++] = (me_line_series){.label = raw_label, .color = COL_MEAN, .x = m->step, .y = m->loss, .n = m->n};
    }
    if (nv)
        loss[ns++] = (me_line_series){.label = "validation loss", .color = me_plot_palette(1), .x = vx, .y = vl,
                                      .n = nv};
    /* log scale: the default run's loss goes from 2 to below 0.001, flat after the first few hundred
     * steps on a linear axis */
    me_line_chart c1 = {.title = t1, .x_title = "step", .y_title = "loss", .series = loss, .n_series = ns,
                        .legend = ns > 1 ? ME_LEGEND_AUTO : ME_LEGEND_NONE, .log_y = 1};
    st = me_chart_line(&cv, &pc->font, me_plot_grid_cell(all, 2, 1, 0, 0), &c1, NULL, err);

    double amin = INFINITY, amax = -INFINITY;
    double target_step = NAN;
    for (size_t i = 0; i < na; i++) {
        amin = fmin(amin, ay[i]);
        amax = fmax(amax, ay[i]);
        if (isnan(target_step) && ay[i] >= ME_REPORT_ACC_TARGET) target_step = ax[i];
    }
    /* what a reader asks of this panel: how often it was measured, where it ended, when it got there */
    char when[96] = "", reached[96];
    if (na >= 2) snprintf(when, sizeof when, ", measured every %.0f steps", ax[1] - ax[0]);
    if (isnan(target_step)) snprintf(reached, sizeof reached, "never %.0f%%", 100 * ME_REPORT_ACC_TARGET);
    else snprintf(reached, sizeof reached, "%.0f%% first at step %.0f", 100 * ME_REPORT_ACC_TARGET, target_step);
    if (na)
        snprintf(t2, sizeof t2, "%s: validation accuracy%s: %.2f%% at step %.0f, %s", pc->run, when,
                 100 * ay[na - 1], ax[na - 1], reached);
    else snprintf(t2, sizeof t2, "%s: validation accuracy (no evaluations yet)", pc->run);
    me_line_series acc = {.label = "validation accuracy", .color = me_plot_palette(2), .x = ax, .y = ay, .n = na};
    me_line_chart c2 = {.title = t2, .x_title = "step", .y_title = "accuracy", .series = &acc, .n_series = 1,
                        .legend = ME_LEGEND_NONE};
    /* Accuracies are fractions: show them on 0..1 so runs compare at a glance, unless they are not. */
    if (!na || (amin >= 0 && amax <= 1)) {
        c2.fix_y = 1;
        c2.y_min = 0;
        c2.y_max = 1.0;
    }
    if (m->n > 0 && m->step[m->n - 1] > m->step[0]) {
        c2.fix_x = 1; /* same step axis as the loss panel */
        c2.x_min = m->step[0];
        c2.x_max = m->step[m->n - 1];
    }
    if (st == ME_OK) st = me_chart_line(&cv, &pc->font, me_plot_grid_cell(all, 2, 1, 1, 0), &c2, NULL, err);
    if (st == ME_OK) st = save_png(pc, &cv, "training.png", written, err);
    me_canvas_free(&cv);
    free(buf);
    return st;
}

/* Every figure: per LayerNorm its trajectories and its heatmap, then the training curves. The figures
 * are independent (each its own canvas; the font and the run's data are only read), so they are drawn
 * and encoded on the kernels' threads, one figure at a time each; a figure's bytes do not depend on
 * which thread drew it. Files are listed, and the first failure reported, in figure order. */
static me_status draw_figures(const plot_ctx *pc, const me_history *h, const me_history_norm *groups, int ng,
                              const double *steps, const me_metrics *m, me_report_files *written, me_error *err) {
    int n = 2 * ng + 1;
    char **paths = calloc((size_t)n, sizeof *paths);
    me_error *errs = calloc((size_t)n, sizeof *errs);
    me_status *sts = calloc((size_t)n, sizeof *sts);
    if (!paths || !errs || !sts) {
        free(paths), free(errs), free(sts);
        return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory");
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int k = 0; k < n; k++) {
        if (k == n - 1)
            sts[k] = training_figure(pc, m, &paths[k], &errs[k]);
        else
            sts[k] = norm_figure(pc, h, &groups[k / 2], steps, k % 2 ? heatmap_panel : trajectory_panel,
                                 k % 2 ? "heatmap" : "trajectories", &paths[k], &errs[k]);
    }
    me_status st = ME_OK;
    for (int k = 0; k < n; k++) {
        if (sts[k] && !st) {
            st = sts[k];
            *err = errs[k];
        }
        if (paths[k] && written) { /* listed even after a failure: the charts that were written */
            me_error ignored;
            me_status added = me_report_files_add(written, paths[k], st ? &ignored : err);
            if (added && !st) st = added;
        }
        free(paths[k]);
    }
    free(paths), free(errs), free(sts);
    return st;
}

me_status me_report_files_add(me_report_files *f, const char *path, me_error *err) {
    size_t len = strlen(path) + 1;
    char **p = realloc(f->paths, (size_t)(f->n + 1) * sizeof *p), *copy = malloc(len);
    if (p) f->paths = p;
    if (!p || !copy) {
        free(copy);
        return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory");
    }
    memcpy(copy, path, len);
    p[f->n++] = copy;
    return ME_OK;
}

void me_report_files_free(me_report_files *f) {
    for (int i = 0; f->paths && i < f->n; i++) free(f->paths[i]);
    free(f->paths);
    memset(f, 0, sizeof *f);
}

me_status me_report_plots(const char *run_dir, me_error *err) { return me_report_plots_list(run_dir, NULL, err); }

me_status me_report_plots_list(const char *run_dir, me_report_files *written, me_error *err) {
    return me_report_plots_font(run_dir, me_font_default_path(), written, err);
}

me_status me_report_plots_font(const char *run_dir, const char *font_path, me_report_files *written, me_error *err) {
    if (written) memset(written, 0, sizeof *written);
    char *hpath = NULL, *mpath = NULL;
    me_status st = report_run_file(run_dir, "history.safetensors", &hpath, err);
    if (st == ME_OK) st = report_run_file(run_dir, "metrics.csv", &mpath, err);
    if (st) {
        free(hpath);
        return st;
    }
    me_history h;
    me_metrics m;
    memset(&m, 0, sizeof m);
    double *steps = NULL;
    me_history_norm *groups = NULL;
    plot_ctx pc;
    memset(&pc, 0, sizeof pc);
    me_report_run_name(run_dir, pc.run, sizeof pc.run);

    st = me_history_read(&h, hpath, err);
    if (st) goto done_paths;
    if (h.n_snap == 0) {
        st = me_error_set(err, ME_ERR_FORMAT, "%s: no snapshots, expected at least one", hpath);
        goto done_hist;
    }
    for (int i = 0; i < h.n; i++)
        if (h.dim[i] == 0 || h.dim[i] > INT_MAX || h.n_snap > INT_MAX) {
            st = me_error_set(err, ME_ERR_FORMAT, "%s: tensor '%s' is [%zu, %zu], expected 1..%d on each side", hpath,
                              h.names[i], h.n_snap, h.dim[i], INT_MAX);
            goto done_hist;
        }
    if ((st = me_metrics_read(&m, mpath, err))) goto done_hist;
    /* The run is readable. Without the font nothing is drawn, and the caller learns why and what to
     * install: training goes on without charts, 'minienc plot' draws them once the font is there. */
    me_error ferr = {0};
    if ((st = me_font_load(&pc.font, font_path, &ferr)) != ME_OK) {
        if (st == ME_ERR_NOMEM) st = me_error_set(err, st, "%s", ferr.msg);
        else
            st = me_error_set(err, ME_ERR_FONT, "%s: no charts drawn: %s; install the package %s, then run 'minienc "
                              "plot %s'", run_dir, ferr.msg, ME_FONT_PACKAGE, run_dir);
        goto done_all;
    }

    snprintf(pc.plots, sizeof pc.plots, "%s/plots", run_dir);
    if ((st = me_file_mkdir_p(pc.plots, err))) goto done_all;
    steps = malloc(sizeof(double) * h.n_snap);
    groups = calloc((size_t)h.n + 1, sizeof *groups);
    if (!steps || !groups) {
        st = me_error_set(err, ME_ERR_NOMEM, "plot: out of memory");
        goto done_all;
    }
    for (size_t s = 0; s < h.n_snap; s++) steps[s] = (double)h.steps[s];
    int ng = me_history_norms(&h, groups);
    st = draw_figures(&pc, &h, groups, ng, steps, &m, written, err);
done_all:
    free(steps);
    free(groups);
    me_metrics_free(&m);
    me_font_free(&pc.font);
done_hist:
    me_history_free(&h);
done_paths:
    free(hpath);
    free(mpath);
    return st;
}
