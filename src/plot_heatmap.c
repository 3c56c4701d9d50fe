/* Heatmaps: a dimension x step matrix in a diverging colour map around a centre value, with a colour
 * bar. */
#include "plot_draw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const me_rgb COL_NAN = {190, 190, 190};

/* ColorBrewer RdBu, from blue (low) through near-white to red (high). */
static const me_rgb DIVERGING[11] = {{5, 48, 97},    {33, 102, 172},  {67, 147, 195},  {146, 197, 222},
                                     {209, 229, 240}, {247, 247, 247}, {253, 219, 199}, {244, 165, 130},
                                     {214, 96, 77},   {178, 24, 43},   {103, 0, 31}};

me_rgb me_heatmap_color(double v, double center, double range) {
    if (!isfinite(v)) return COL_NAN;
    double t = range > 0 ? 0.5 + (v - center) / (2.0 * range) : 0.5;
    t = plot_clampd(t, 0.0, 1.0) * 10.0;
    int i = (int)floor(t);
    if (i >= 10) i = 9;
    double u = t - i;
    me_rgb a = DIVERGING[i], b = DIVERGING[i + 1];
    me_rgb o = {(unsigned char)(a.r + (b.r - a.r) * u + 0.5), (unsigned char)(a.g + (b.g - a.g) * u + 0.5),
                (unsigned char)(a.b + (b.b - a.b) * u + 0.5)};
    return o;
}

/* Source range [*a, *b) of pixel i out of n pixels over m cells: the mean of the cells when m >= n,
 * the nearest cell otherwise. */
static void cell_range(int i, int n, int m, int *a, int *b) {
    if (m >= n) {
        *a = (int)((long long)i * m / n);
        *b = (int)((long long)(i + 1) * m / n);
    } else {
        *a = (int)(((long long)2 * i + 1) * m / (2LL * n));
        *b = *a + 1;
    }
}

/* Fractional column index where steps reaches value v (steps ascending). */
static double step_to_col(const double *steps, int cols, double v) {
    if (!steps) return v;
    int lo = 0, hi = cols - 1;
    if (v <= steps[0]) return 0;
    if (v >= steps[cols - 1]) return cols - 1;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (steps[mid] <= v) lo = mid;
        else hi = mid;
    }
    double span = steps[hi] - steps[lo];
    return lo + (span > 0 ? (v - steps[lo]) / span : 0.0);
}

me_status me_chart_heatmap(me_canvas *c, const me_font *f, me_rect r, const me_heatmap_spec *spec, me_plot_area *area,
                           me_error *err) {
    if (area) memset(area, 0, sizeof *area);
    me_status st = plot_check_chart(c, f, &r, "heatmap", err);
    if (st != ME_OK) return st;
    int rows = spec->rows, cols = spec->cols;
    if (rows < 1 || cols < 1 || !spec->values)
        return me_error_set(err, ME_ERR_CONFIG, "plot: heatmap: %dx%d values%s, expected at least 1x1", rows, cols,
                            spec->values ? "" : " (NULL)");
    if (spec->steps)
        for (int k = 1; k < cols; k++)
            if (!(spec->steps[k] >= spec->steps[k - 1]))
                return me_error_set(err, ME_ERR_CONFIG, "plot: heatmap: steps[%d] = %g after %g, expected ascending", k,
                                    spec->steps[k], spec->steps[k - 1]);
    double center = isfinite(spec->center) ? spec->center : 0.0, range = spec->range;
    size_t total = (size_t)rows * (size_t)cols;
    if (!(range > 0) || !isfinite(range)) {
        range = 0;
        for (size_t i = 0; i < total; i++) {
            double dv = fabs(spec->values[i] - center);
            if (isfinite(dv) && dv > range) range = dv;
        }
        if (range <= 0) range = fabs(center) * 0.01 > 1e-6 ? fabs(center) * 0.01 : 1e-6;
    }
    double s0 = spec->steps ? spec->steps[0] : 0.0, s1 = spec->steps ? spec->steps[cols - 1] : cols - 1.0;

    plot_layout L;
    plot_layout_init(&L, spec->font_scale, spec->title, spec->x_title, spec->y_title);
    me_rect p;
    p.y = r.y + L.top;
    p.h = r.h - L.top - L.bottom;
    plot_ticks ty, tx, tc;
    if (spec->row_labels) plot_make_label_ticks(&ty, f, L.px_tick, spec->row_labels, rows, p.h, 0);
    else plot_make_ticks_fit(&ty, f, L.px_tick, 0, rows - 1, plot_clampi(p.h / 55, 2, 10), 1.0, p.h, 0);
    double bar_lo = spec->sequential ? center : center - range; /* the colour bar's bottom value */
    plot_make_ticks_fit(&tc, f, L.px_tick, bar_lo, center + range, plot_clampi(p.h / 60, 3, 9), 0.0, p.h, 0);
    int left = L.left_fixed + (int)ceil(plot_ticks_max_width(&ty, f, L.px_tick));
    int bar_w = (int)(16 * L.s), bar_gap = (int)(18 * L.s);
    int right = bar_gap + bar_w + PLOT_TICK_LEN + 5 + (int)ceil(plot_ticks_max_width(&tc, f, L.px_tick)) + 8 +
                (plot_nonempty(spec->colorbar_title) ? (int)ceil(L.px_axis * 1.5) : 0) + PLOT_PAD;
    p.x = r.x + left;
    p.w = r.w - left - right;
    if (p.w < 40 || p.h < 30)
        return me_error_set(err, ME_ERR_CONFIG, "plot: heatmap: %dx%d leaves no room for the plot, make it larger", r.w,
                            r.h);
    if (s1 > s0)
        plot_make_ticks_fit(&tx, f, L.px_tick, s0, s1, plot_clampi(p.w / 110, 3, 10), spec->steps ? 0.0 : 1.0, p.w, 1);
    else {
        tx.n = 1;
        tx.v[0] = s0;
        tx.step = fabs(s0) > 0 ? fabs(s0) : 1.0;
        plot_format_ticks(&tx);
    }

    /* Columns reduced first (rows x pw), then rows (ph x pw). */
    double *colred = malloc(sizeof(double) * (size_t)rows * p.w);
    if (!colred) return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory for a %dx%d heatmap", rows, cols);
    for (int d0 = 0; d0 < rows; d0++) {
        const float *src = spec->values + (size_t)d0 * cols;
        for (int i = 0; i < p.w; i++) {
            int a, b;
            cell_range(i, p.w, cols, &a, &b);
            double sum = 0;
            int n = 0;
            for (int k = a; k < b; k++)
                if (isfinite(src[k])) {
                    sum += src[k];
                    n++;
                }
            colred[(size_t)d0 * p.w + i] = n ? sum / n : NAN;
        }
    }
    plot_dc d = {c, r};
    for (int j = 0; j < p.h; j++) {
        int a, b;
        cell_range(j, p.h, rows, &a, &b);
        for (int i = 0; i < p.w; i++) {
            double sum = 0;
            int n = 0;
            for (int k = a; k < b; k++) {
                double v = colred[(size_t)k * p.w + i];
                if (isfinite(v)) {
                    sum += v;
                    n++;
                }
            }
            plot_blend(&d, p.x + i, p.y + j, me_heatmap_color(n ? sum / n : NAN, center, range), 1.0);
        }
    }
    free(colred);

    double xs[64], ys[64], cs[64];
    for (int k = 0; k < tx.n; k++) xs[k] = p.x + (step_to_col(spec->steps, cols, tx.v[k]) + 0.5) * p.w / cols;
    for (int k = 0; k < ty.n; k++) ys[k] = p.y + (ty.v[k] + 0.5) * p.h / rows;
    plot_draw_frame_ticks(&d, p, &tx, xs, &ty, ys);

    /* Colour bar: high values on top. */
    me_rect bar = {p.x + p.w + bar_gap, p.y, bar_w, p.h};
    double span = center + range - bar_lo;
    for (int j = 0; j < bar.h; j++) {
        double v = center + range - (j + 0.5) / bar.h * span;
        plot_fill_rect(&d, bar.x, bar.y + j, bar.w, 1, me_heatmap_color(v, center, range), 1.0);
    }
    plot_stroke_rect(&d, bar.x - 1, bar.y - 1, bar.w + 2, bar.h + 2, PLOT_COL_AXIS);
    double label_w = plot_ticks_max_width(&tc, f, L.px_tick);
    for (int k = 0; k < tc.n && st == ME_OK; k++) {
        cs[k] = bar.y + (center + range - tc.v[k]) / span * (bar.h - 1) + 0.5;
        plot_fill_rect(&d, bar.x + bar.w + 1, (int)floor(cs[k]), PLOT_TICK_LEN, 1, PLOT_COL_AXIS, 1.0);
        st = plot_draw_text(&d, f, bar.x + bar.w + 1 + PLOT_TICK_LEN + 4, cs[k], L.px_tick, PLOT_COL_TEXT,
                            ME_TEXT_LEFT, ME_TEXT_MIDDLE, 0, tc.label[k], err);
    }
    if (st == ME_OK && plot_nonempty(spec->colorbar_title))
        st = plot_draw_text(&d, f, bar.x + bar.w + 1 + PLOT_TICK_LEN + 4 + label_w + 8 + L.px_axis * 0.5,
                            bar.y + bar.h / 2.0, L.px_axis, PLOT_COL_TEXT, 0, 0, 1, spec->colorbar_title, err);
    if (st == ME_OK)
        st = plot_draw_axes_text(&d, f, &L, r, p, spec->title, spec->x_title, spec->y_title, &tx, xs, &ty, ys, err);
    if (st != ME_OK) return st;
    if (area) {
        area->plot = p;
        area->x_min = s0;
        area->x_max = s1;
        area->y_min = 0;
        area->y_max = rows - 1;
        area->colorbar = bar;
    }
    return ME_OK;
}

