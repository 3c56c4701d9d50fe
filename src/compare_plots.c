/* The charts of a comparison: one colour per group, each line the mean over the group's runs with a
 * min–max band. See me_compare_plots in include/minienc/compare.h. */
#include "minienc/compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minienc/plot.h"

#include "file.h"
#include "internal.h"

#define FIG_W 1500
#define HEAD_H 44 /* the figure's own title line above the panels */

typedef struct {
    me_compare *c;
    const char *dir;
    me_font font;
    me_report_files *files;
} fig_ctx;

static me_status save(fig_ctx *fc, const me_canvas *cv, const char *name, me_error *err) {
    char path[ME_PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", fc->dir, name);
    me_status st = me_canvas_write_png(cv, path, err);
    if (st || !fc->files) return st;
    return me_report_files_add(fc->files, path, err);
}

/* A canvas of w x h with the figure's title line; *body receives the area below it. */
static me_status figure(fig_ctx *fc, me_canvas *cv, int w, int h, const char *title, me_rect *body, me_error *err) {
    me_status st = me_canvas_init(cv, w, h, err);
    if (st) return st;
    st = me_canvas_text(cv, &fc->font, w / 2.0, 14, 19, (me_rgb){34, 34, 34}, ME_TEXT_CENTER, ME_TEXT_TOP, 0, title,
                        err);
    *body = (me_rect){0, HEAD_H, w, h - HEAD_H};
    if (st) me_canvas_free(cv);
    return st;
}

/* The legend entry of group g: its label and how many runs the line averages. */
static void group_label(const me_compare *c, int g, int runs, char *buf, size_t cap) {
    if (runs > 1) snprintf(buf, cap, "%s (%d runs)", c->groups[g].label, runs);
    else snprintf(buf, cap, "%s", c->groups[g].label);
}

/* "N groups; lines: mean over each group's runs, bands: min-max" */
static void band_words(const me_compare *c, char *buf, size_t cap) {
    int most = 0;
    for (int g = 0; g < c->n_groups; g++)
        if (c->groups[g].n > most) most = c->groups[g].n;
    if (most > 1) snprintf(buf, cap, "lines: mean over each group's runs, bands: min to max");
    else snprintf(buf, cap, "one run per group");
}

/* A panel of one series per group (series[g], NULL entries left out). */
static me_status series_panel(fig_ctx *fc, me_canvas *cv, me_rect r, const me_compare_series *ser, const char *title,
                              const char *xt, const char *yt, int log_y, int acc, const char *const *x_labels,
                              int n_x_labels, me_error *err) {
    const me_compare *c = fc->c;
    me_line_series *ls = calloc((size_t)c->n_groups + 1, sizeof *ls);
    char(*labels)[600] = calloc((size_t)c->n_groups + 1, sizeof *labels);
    if (!ls || !labels) {
        free(ls);
        free(labels);
        return me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
    }
    int n = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (int g = 0; g < c->n_groups; g++) {
        if (!ser[g].runs || !ser[g].n) continue;
        group_label(c, g, ser[g].runs, labels[n], sizeof labels[n]);
        ls[n] = (me_line_series){.label = labels[n], .color = me_plot_palette(g), .x = ser[g].x, .y = ser[g].mean,
                                 .n = ser[g].n};
        if (ser[g].runs > 1) ls[n].band_lo = ser[g].lo, ls[n].band_hi = ser[g].hi;
        for (size_t i = 0; i < ser[g].n; i++) lo = fmin(lo, ser[g].lo[i]), hi = fmax(hi, ser[g].hi[i]);
        n++;
    }
    me_line_chart spec = {.title = title, .x_title = xt, .y_title = yt, .series = ls, .n_series = n,
                          .legend = n > 0 ? ME_LEGEND_AUTO : ME_LEGEND_NONE, .log_y = log_y, .x_labels = x_labels,
                          .n_x_labels = n_x_labels};
    if (acc && !(lo < 0) && !(hi > 1)) { /* accuracies on 0..1, so that groups compare at a glance */
        spec.fix_y = 1;
        spec.y_min = 0;
        spec.y_max = 1;
    }
    if (x_labels) { /* categories at 0 .. n-1, with half a step of room at each end */
        spec.fix_x = 1;
        spec.x_min = -0.25;
        spec.x_max = n_x_labels - 0.75;
    }
    me_status st = me_chart_line(cv, &fc->font, r, &spec, NULL, err);
    free(ls);
    free(labels);
    return st;
}

static void free_series(me_compare_series *s, int n) {
    for (int i = 0; s && i < n; i++) me_compare_series_free(&s[i]);
    free(s);
}

/* ---- curves.png ---------------------------------------------------------------------------------------- */

static me_status curves_figure(fig_ctx *fc, me_error *err) {
    me_compare *c = fc->c;
    size_t steps = c->runs[0].metrics.n;
    int smooth = steps >= 200 ? (int)(steps / 50) | 1 : 1;
    me_compare_series *loss = calloc((size_t)c->n_groups, sizeof *loss), *acc = calloc((size_t)c->n_groups, sizeof *acc);
    me_status st = loss && acc ? ME_OK : me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
    for (int g = 0; g < c->n_groups && !st; g++) {
        st = me_compare_curve(c, g, ME_COMPARE_TRAIN_LOSS, smooth, &loss[g], err);
        if (!st) st = me_compare_curve(c, g, ME_COMPARE_VALID_ACC, 1, &acc[g], err);
    }
    me_canvas cv;
    me_rect body;
    char title[300], words[100], t1[200];
    band_words(c, words, sizeof words);
    snprintf(title, sizeof title, "Training curves of %d group%s; %s", c->n_groups, c->n_groups == 1 ? "" : "s", words);
    if (smooth > 1) snprintf(t1, sizeof t1, "training loss (log scale; each run a moving average of %d steps)", smooth);
    else snprintf(t1, sizeof t1, "training loss (log scale)");
    if (!st && !(st = figure(fc, &cv, FIG_W, 1100, title, &body, err))) {
        st = series_panel(fc, &cv, me_plot_grid_cell(body, 2, 1, 0, 0), loss, t1, "step", "loss", 1, 0, NULL, 0, err);
        if (!st)
            st = series_panel(fc, &cv, me_plot_grid_cell(body, 2, 1, 1, 0), acc, "validation accuracy", "step",
                              "accuracy", 0, 1, NULL, 0, err);
        if (!st) st = save(fc, &cv, "curves.png", err);
        me_canvas_free(&cv);
    }
    free_series(loss, loss ? c->n_groups : 0);
    free_series(acc, acc ? c->n_groups : 0);
    return st;
}

/* ---- <norm>.png ---------------------------------------------------------------------------------------- */

static me_status norm_figure(fig_ctx *fc, int p, me_error *err) {
    me_compare *c = fc->c;
    const char *norm = c->norms[p];
    static const struct {
        me_compare_norm_stat stat;
        const char *title, *axis;
    } panels[6] = {{ME_COMPARE_GAMMA_MEAN, "mean γ over the dimensions", "mean γ"},
                   {ME_COMPARE_GAMMA_MAXDEV, "largest |γ − 1|", "max |γ − 1|"},
                   {ME_COMPARE_GAMMA_DRIFT, "L2 drift of γ from its initial values", "‖γ − γ₀‖₂"},
                   {ME_COMPARE_BETA_MEAN, "mean β over the dimensions", "mean β"},
                   {ME_COMPARE_BETA_MAXABS, "largest |β|", "max |β|"},
                   {ME_COMPARE_BETA_DRIFT, "L2 drift of β from its initial values", "‖β − β₀‖₂"}};
    me_compare_series *ser = calloc((size_t)c->n_groups * 6, sizeof *ser);
    if (!ser) return me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
    me_status st = ME_OK;
    int drawn = 0;
    for (int k = 0; k < 6 && !st; k++)
        for (int g = 0; g < c->n_groups && !st; g++) {
            st = me_compare_norm_curve(c, g, norm, panels[k].stat, &ser[k * c->n_groups + g], err);
            drawn += ser[k * c->n_groups + g].runs > 0;
        }
    char file[ME_NAME_MAX + 8];
    snprintf(file, sizeof file, "%s.png", norm);
    for (int g = 0; g < c->n_groups && !st; g++)
        if (!ser[g].runs && !ser[3 * c->n_groups + g].runs)
            me_compare_note(c, "%s: group '%s' left out: not every run of it has LayerNorm %s (and a history)", file,
                            c->groups[g].label, norm);
    if (!st && drawn) {
        me_canvas cv;
        me_rect body;
        char title[400], words[100];
        band_words(c, words, sizeof words);
        snprintf(title, sizeof title, "%s: γ (top) and β (bottom) against step; %s", norm, words);
        if (!(st = figure(fc, &cv, 1800, 1000, title, &body, err))) {
            for (int k = 0; k < 6 && !st; k++)
                st = series_panel(fc, &cv, me_plot_grid_cell(body, 2, 3, k / 3, k % 3), &ser[k * c->n_groups],
                                  panels[k].title, "step", panels[k].axis, 0, 0, NULL, 0, err);
            if (!st) st = save(fc, &cv, file, err);
            me_canvas_free(&cv);
        }
    }
    free_series(ser, 6 * c->n_groups);
    return st;
}

/* ---- drift.png ----------------------------------------------------------------------------------------- */

static me_status drift_figure(fig_ctx *fc, me_error *err) {
    me_compare *c = fc->c;
    int P = c->n_norms;
    me_compare_series *ser = calloc((size_t)c->n_groups * 2, sizeof *ser);
    const char **labels = calloc((size_t)P + 1, sizeof *labels);
    me_status st = ser && labels ? ME_OK : me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
    for (int p = 0; p < P && labels; p++) labels[p] = c->norms[p];
    for (int k = 0; k < 2 && !st; k++)
        for (int g = 0; g < c->n_groups && !st; g++) {
            me_compare_series *s = &ser[k * c->n_groups + g];
            double *block = malloc(sizeof(double) * (4 * (size_t)P + 1));
            if (!block) {
                st = me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
                break;
            }
            s->x = block, s->mean = block + P, s->lo = block + 2 * P, s->hi = block + 3 * P;
            s->n = (size_t)P;
            for (int p = 0; p < P; p++) {
                me_compare_stat d = me_compare_final_drift(c, g, c->norms[p], k == 0);
                s->x[p] = p;
                s->mean[p] = d.n ? d.mean : NAN;
                s->lo[p] = d.n ? d.lo : NAN;
                s->hi[p] = d.n ? d.hi : NAN;
                if (d.n && d.n > s->runs) s->runs = d.n;
            }
        }
    if (!st) {
        me_canvas cv;
        me_rect body;
        char title[300], words[100];
        band_words(c, words, sizeof words);
        snprintf(title, sizeof title, "Final L2 drift from the initial values, per LayerNorm across the depth; %s", words);
        if (!(st = figure(fc, &cv, FIG_W, 1000, title, &body, err))) {
            st = series_panel(fc, &cv, me_plot_grid_cell(body, 2, 1, 0, 0), ser, "γ: ‖γ_end − γ₀‖₂", "LayerNorm",
                              "L2 drift of γ", 0, 0, labels, P, err);
            if (!st)
                st = series_panel(fc, &cv, me_plot_grid_cell(body, 2, 1, 1, 0), &ser[c->n_groups], "β: ‖β_end − β₀‖₂",
                                  "LayerNorm", "L2 drift of β", 0, 0, labels, P, err);
            if (!st) st = save(fc, &cv, "drift.png", err);
            me_canvas_free(&cv);
        }
    }
    free_series(ser, ser ? 2 * c->n_groups : 0);
    free(labels);
    return st;
}

/* ---- outliers.png -------------------------------------------------------------------------------------- */

static me_status outliers_figure(fig_ctx *fc, me_error *err) {
    me_compare *c = fc->c;
    float **maps = calloc((size_t)c->n_groups, sizeof *maps);
    int **rows = calloc((size_t)c->n_groups, sizeof *rows);
    int *nr = calloc((size_t)c->n_groups, sizeof *nr), *nd = calloc((size_t)c->n_groups, sizeof *nd);
    me_status st = maps && rows && nr && nd ? ME_OK : me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
    int h = HEAD_H, shown = 0;
    for (int g = 0; g < c->n_groups && !st; g++) {
        st = me_compare_outlier_map(c, g, &maps[g], &rows[g], &nr[g], &nd[g], err);
        if (st) break;
        if (nr[g] == 0) {
            me_compare_note(c, "outliers.png: group '%s' left out (its runs differ in d_model or have no history)",
                            c->groups[g].label);
            continue;
        }
        h += 150 + 34 * nr[g];
        shown++;
    }
    if (!st && shown) {
        me_canvas cv;
        me_rect body;
        char title[300];
        snprintf(title, sizeof title, "Outlier γ dimensions (|γ_d − mean γ| > %g std at the end of training): share of "
                 "each group's runs", c->sigma);
        if (!(st = figure(fc, &cv, FIG_W, h, title, &body, err))) {
            int y = HEAD_H;
            for (int g = 0; g < c->n_groups && !st; g++) {
                if (nr[g] == 0) continue;
                const char **labels = calloc((size_t)nr[g], sizeof *labels);
                if (!labels) {
                    st = me_error_set(err, ME_ERR_NOMEM, "compare: out of memory");
                    break;
                }
                for (int r = 0; r < nr[g]; r++) labels[r] = c->norms[rows[g][r]];
                char t[700];
                snprintf(t, sizeof t, "%s (%d run%s)", c->groups[g].label, c->groups[g].n,
                         c->groups[g].n == 1 ? "" : "s");
                me_heatmap_spec hs = {.title = t, .x_title = "dimension", .colorbar_title = "share of runs",
                                      .values = maps[g], .rows = nr[g], .cols = nd[g], .center = 0, .range = 1,
                                      .row_labels = labels, .sequential = 1};
                int ph = 150 + 34 * nr[g];
                st = me_chart_heatmap(&cv, &fc->font, (me_rect){0, y, FIG_W, ph}, &hs, NULL, err);
                y += ph;
                free(labels);
            }
            if (!st) st = save(fc, &cv, "outliers.png", err);
            me_canvas_free(&cv);
        }
    }
    for (int g = 0; maps && rows && g < c->n_groups; g++) {
        free(maps[g]);
        free(rows[g]);
    }
    free(maps);
    free(rows);
    free(nr);
    free(nd);
    return st;
}

me_status me_compare_plots(me_compare *c, const char *out_dir, me_report_files *written, me_error *err) {
    if (written) memset(written, 0, sizeof *written);
    fig_ctx fc = {c, out_dir, {0}, written};
    me_error ferr = {0};
    me_status st = me_font_load(&fc.font, me_font_default_path(), &ferr);
    if (st) {
        if (st == ME_ERR_NOMEM) return me_error_set(err, st, "%s", ferr.msg);
        return me_error_set(err, ME_ERR_FONT, "compare: no charts drawn: %s; install the package %s", ferr.msg,
                            ME_FONT_PACKAGE);
    }
    if (!(st = me_file_mkdir_p(out_dir, err))) st = curves_figure(&fc, err);
    for (int p = 0; p < c->n_norms && !st; p++) st = norm_figure(&fc, p, err);
    if (!st && c->n_norms) st = drift_figure(&fc, err);
    if (!st && c->n_norms) st = outliers_figure(&fc, err);
    me_font_free(&fc.font);
    return st;
}
