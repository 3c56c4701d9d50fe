/* Chart axes: round tick values and their labels, the margins around a plot area, and the frame, tick
 * marks and text drawn around it. */
#include "plot_draw.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- ticks ---- */

/* The smallest of 1, 2, 5 x 10^k that is >= raw. */
static double nice_step(double raw) {
    double mag = pow(10.0, floor(log10(raw)));
    double n = raw / mag;
    return (n <= 1.0 + 1e-9 ? 1.0 : n <= 2.0 + 1e-9 ? 2.0 : n <= 5.0 + 1e-9 ? 5.0 : 10.0) * mag;
}

/* The 1, 2, 5 x 10^k nearest to raw (geometric midpoints). */
static double nice_round(double raw) {
    double mag = pow(10.0, floor(log10(raw)));
    double n = raw / mag;
    return (n < 1.4142 ? 1.0 : n < 3.1623 ? 2.0 : n < 7.0711 ? 5.0 : 10.0) * mag;
}

void plot_format_ticks(plot_ticks *t) {
    double maxabs = 0;
    for (int k = 0; k < t->n; k++)
        if (fabs(t->v[k]) > maxabs) maxabs = fabs(t->v[k]);
    int sci = maxabs >= 1e6 || (maxabs > 0 && maxabs < 1e-3);
    int dec = (int)ceil(-log10(t->step) - 1e-9);
    if (dec < 0) dec = 0;
    if (dec > 12) dec = 12;
    int es = (int)floor(log10(t->step) + 1e-9);
    for (int k = 0; k < t->n; k++) {
        double v = t->v[k];
        char *out = t->label[k];
        if (!sci) {
            snprintf(out, 32, "%.*f", dec, v);
            continue;
        }
        if (v == 0.0) {
            snprintf(out, 32, "0");
            continue;
        }
        int e = (int)floor(log10(fabs(v)) + 1e-9);
        int digits = e - es > 0 ? e - es : 0;
        if (digits > 6) digits = 6;
        char mant[24];
        snprintf(mant, sizeof mant, "%.*f", digits, v / pow(10.0, e));
        if (strchr(mant, '.')) { /* "2.0" -> "2": compact */
            size_t l = strlen(mant);
            while (l > 0 && mant[l - 1] == '0') mant[--l] = '\0';
            if (l > 0 && mant[l - 1] == '.') mant[--l] = '\0';
        }
        if (strcmp(mant, "10") == 0 || strcmp(mant, "-10") == 0) { /* rounding carried into the exponent */
            snprintf(mant, sizeof mant, "%s", v < 0 ? "-1" : "1");
            e++;
        }
        snprintf(out, 32, "%se%d", mant, e);
    }
}

/* Round ticks inside [lo, hi], about target of them, at multiples of a 1/2/5 x 10^k step >= min_step. */
static void make_ticks(plot_ticks *t, double lo, double hi, int target, double min_step) {
    if (target < 2) target = 2;
    double step = nice_round((hi - lo) / target);
    if (step < min_step) step = min_step;
    for (;;) {
        double k0 = ceil(lo / step - 1e-9), k1 = floor(hi / step + 1e-9);
        if (k1 - k0 + 1 <= 64 || !isfinite(step)) {
            t->n = 0;
            for (double k = k0; k <= k1 && t->n < 64; k++) {
                double v = k * step;
                if (fabs(v) < step * 1e-9) v = 0.0; /* no "-0" */
                t->v[t->n++] = v;
            }
            break;
        }
        step = nice_step(step * 1.01);
    }
    t->step = step;
    plot_format_ticks(t);
}

void plot_make_ticks_fit(plot_ticks *t, const me_font *f, double px, double lo, double hi, int target,
                         double min_step, double length, int horizontal) {
    make_ticks(t, lo, hi, target, min_step);
    for (int guard = 0; guard < 20 && t->n > 2; guard++) {
        double need = 0;
        for (int k = 0; k < t->n; k++) {
            double w = horizontal ? me_font_text_width(f, px, t->label[k]) + px : 2.2 * px;
            need += w;
        }
        if (need <= length * 0.9) break;
        make_ticks(t, lo, hi, t->n - 1, nice_step(t->step * 1.01));
    }
}

void plot_make_label_ticks(plot_ticks *t, const me_font *f, double px, const char *const *labels, int n,
                           double length, int horizontal) {
    int stride = 1;
    for (; stride < n; stride++) {
        double need = 0;
        for (int k = 0; k < n; k += stride)
            need += horizontal ? me_font_text_width(f, px, labels[k]) + 1.5 * px : 1.6 * px;
        if (need <= length * 0.95 && (n + stride - 1) / stride <= 64) break;
    }
    t->n = 0;
    for (int k = 0; k < n && t->n < 64; k += stride) {
        t->v[t->n] = k;
        snprintf(t->label[t->n++], sizeof t->label[0], "%s", labels[k] ? labels[k] : "");
    }
    t->step = stride;
}

/* 10^e x mant as a tick label: plain decimals from 0.001 to 10000, else "2e-5". */
static void log_label(char *out, size_t cap, int mant, int e) {
    if (e >= -3 && e <= 4) {
        double v = mant * pow(10.0, e);
        snprintf(out, cap, "%.*f", e < 0 ? -e : 0, v);
    } else {
        snprintf(out, cap, "%de%d", mant, e);
    }
}

void plot_make_log_ticks(plot_ticks *t, const me_font *f, double px, double lo, double hi, double length,
                         int horizontal) {
    t->n = 0;
    if (!(hi - lo >= 1.0)) {
        /* less than a decade: round ticks in data units, placed on the log axis */
        plot_ticks lin;
        double a = pow(10.0, lo), b = pow(10.0, hi);
        plot_make_ticks_fit(&lin, f, px, a, b, 5, 0.0, length, horizontal);
        for (int k = 0; k < lin.n; k++)
            if (lin.v[k] > 0) {
                t->v[t->n] = log10(lin.v[k]);
                memcpy(t->label[t->n++], lin.label[k], sizeof lin.label[k]);
            }
        t->step = lin.step;
        return;
    }
    static const int all[3] = {1, 2, 5};
    int n_mant = hi - lo <= 2.5 ? 3 : 1;
    int e0 = (int)floor(lo), e1 = (int)ceil(hi);
    double per = horizontal ? 4.0 * px : 2.2 * px; /* room one label needs along the axis */
    for (int stride = 1; stride < 64; stride++) {
        t->n = 0;
        for (int e = e0; e <= e1 && t->n < 64; e++) {
            if (((e % stride) + stride) % stride != 0) continue;
            for (int j = 0; j < n_mant && t->n < 64; j++) {
                double v = e + log10((double)all[j]);
                if (v < lo - 1e-9 || v > hi + 1e-9) continue;
                t->v[t->n] = v;
                log_label(t->label[t->n], sizeof t->label[t->n], all[j], e);
                t->n++;
            }
        }
        if (t->n * per <= length * 0.9 || t->n <= 2) break;
        if (n_mant > 1) { /* first drop the 2s and 5s */
            n_mant = 1;
            stride = 0;
        }
    }
    t->step = 1.0;
}

double plot_ticks_max_width(const plot_ticks *t, const me_font *f, double px) {
    double w = 0;
    for (int k = 0; k < t->n; k++) {
        double x = me_font_text_width(f, px, t->label[k]);
        if (x > w) w = x;
    }
    return w;
}

/* ---- layout ---- */

void plot_layout_init(plot_layout *L, double font_scale, const char *title, const char *xt, const char *yt) {
    L->s = font_scale > 0 ? font_scale : 1.0;
    L->px_title = PLOT_PX_TITLE * L->s;
    L->px_axis = PLOT_PX_AXIS * L->s;
    L->px_tick = PLOT_PX_TICK * L->s;
    L->px_legend = PLOT_PX_LEGEND * L->s;
    L->top = PLOT_PAD + (plot_nonempty(title) ? (int)ceil(L->px_title * 1.6) : 6);
    L->bottom = PLOT_PAD + PLOT_TICK_LEN + 6 + (int)ceil(L->px_tick * 1.1) +
                (plot_nonempty(xt) ? (int)ceil(L->px_axis * 1.7) : 0);
    L->left_fixed = PLOT_PAD + PLOT_TICK_LEN + 8 + (plot_nonempty(yt) ? (int)ceil(L->px_axis * 1.6) : 0);
}

me_status plot_draw_axes_text(plot_dc *d, const me_font *f, const plot_layout *L, me_rect r, me_rect p,
                              const char *title, const char *xt, const char *yt, const plot_ticks *tx,
                              const double *xs, const plot_ticks *ty, const double *ys, me_error *err) {
    me_status st = ME_OK;
    if (plot_nonempty(title))
        st = plot_draw_text(d, f, p.x + p.w / 2.0, r.y + PLOT_PAD, L->px_title, PLOT_COL_TEXT, ME_TEXT_CENTER,
                            ME_TEXT_TOP, 0, title, err);
    double tick_label_y = p.y + p.h + PLOT_TICK_LEN + 5;
    for (int k = 0; k < tx->n && st == ME_OK; k++)
        st = plot_draw_text(d, f, xs[k], tick_label_y, L->px_tick, PLOT_COL_TEXT, ME_TEXT_CENTER, ME_TEXT_TOP, 0,
                            tx->label[k], err);
    for (int k = 0; k < ty->n && st == ME_OK; k++)
        st = plot_draw_text(d, f, p.x - PLOT_TICK_LEN - 5, ys[k], L->px_tick, PLOT_COL_TEXT, ME_TEXT_RIGHT,
                            ME_TEXT_MIDDLE, 0, ty->label[k], err);
    if (st == ME_OK && plot_nonempty(xt))
        st = plot_draw_text(d, f, p.x + p.w / 2.0, r.y + r.h - PLOT_PAD, L->px_axis, PLOT_COL_TEXT, ME_TEXT_CENTER,
                            ME_TEXT_BASELINE, 0, xt, err);
    if (st == ME_OK && plot_nonempty(yt))
        st = plot_draw_text(d, f, r.x + PLOT_PAD + L->px_axis * 0.5, p.y + p.h / 2.0, L->px_axis, PLOT_COL_TEXT, 0,
                            0, 1, yt, err);
    return st;
}

void plot_draw_frame_ticks(plot_dc *d, me_rect p, const plot_ticks *tx, const double *xs, const plot_ticks *ty,
                           const double *ys) {
    for (int k = 0; k < tx->n; k++)
        plot_fill_rect(d, (int)floor(xs[k]), p.y + p.h, 1, PLOT_TICK_LEN, PLOT_COL_AXIS, 1.0);
    for (int k = 0; k < ty->n; k++)
        plot_fill_rect(d, p.x - PLOT_TICK_LEN, (int)floor(ys[k]), PLOT_TICK_LEN, 1, PLOT_COL_AXIS, 1.0);
    plot_stroke_rect(d, p.x - 1, p.y - 1, p.w + 2, p.h + 2, PLOT_COL_AXIS);
}

me_status plot_check_chart(me_canvas *c, const me_font *f, me_rect *r, const char *what, me_error *err) {
    if (!f->info)
        return me_error_set(err, ME_ERR_USAGE, "plot: %s: no font loaded, expected one from me_font_load", what);
    *r = plot_rect_clip(*r, me_canvas_rect(c));
    if (r->w < 120 || r->h < 80)
        return me_error_set(err, ME_ERR_CONFIG, "plot: %s: drawing area %dx%d is too small, expected at least 120x80",
                            what, r->w, r->h);
    return ME_OK;
}
