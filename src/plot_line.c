/* Line charts: series with an optional ±std band and min–max envelope, fitted or fixed axes, and a
 * legend placed where it hides the fewest points. */
#include "plot_draw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const me_rgb COL_LEGEND_EDGE = {200, 200, 200};

static double sx_of(const me_line_series *s, size_t i) { return s->x ? s->x[i] : (double)i; }

typedef struct {
    double x_min, x_max, y_min, y_max;
    int pw, ph;
} lmap;

static double map_x(const lmap *m, double v) { return 0.5 + (v - m->x_min) / (m->x_max - m->x_min) * (m->pw - 1); }
static double map_y(const lmap *m, double v) { return 0.5 + (m->y_max - v) / (m->y_max - m->y_min) * (m->ph - 1); }

/* Polyline with per-column min/max reduction: consecutive points that fall in the same pixel column
 * become one vertical stroke from their min to their max, joined to the neighbouring columns, so the
 * work is O(n + width) and spikes survive. Non-finite points break the line. */
static void cov_polyline(plot_covbuf *cb, const lmap *m, const me_line_series *s, const double *y, double hw) {
    int have_prev = 0, col = -1, col_points = 0;
    double prev_x = 0, prev_y = 0, fx = 0, fy = 0, lx = 0, ly = 0, mn = 0, mx = 0;
    for (size_t i = 0; i <= s->n; i++) {
        int end = i == s->n;
        double X = 0, Y = 0;
        int ok = 0, c = -2;
        if (!end) {
            double xv = sx_of(s, i), yv = y[i];
            ok = isfinite(xv) && isfinite(yv);
            if (ok) {
                X = plot_clampd(map_x(m, xv), -1e6, 1e6);
                Y = plot_clampd(map_y(m, yv), -1e6, 1e6);
                c = (int)floor(X);
            }
        }
        if (!end && ok && c == col) {
            col_points++;
            lx = X;
            ly = Y;
            if (Y < mn) mn = Y;
            if (Y > mx) mx = Y;
            continue;
        }
        if (col != -1) { /* flush the finished column */
            if (have_prev) plot_cov_segment(cb, prev_x, prev_y, fx, fy, hw);
            else if (col_points == 1 && (end || !ok))
                plot_cov_segment(cb, fx, fy, fx, fy, 2.0 * hw + 0.5); /* an isolated point: a visible dot */
            else plot_cov_segment(cb, fx, fy, fx, fy, hw);
            if (mx > mn) plot_cov_segment(cb, col + 0.5, mn, col + 0.5, mx, hw);
            if (lx != fx || ly != fy) plot_cov_segment(cb, col + 0.5, ly, lx, ly, hw);
            prev_x = lx;
            prev_y = ly;
            have_prev = 1;
        }
        if (end) break;
        if (!ok) {
            have_prev = 0;
            col = -1;
            continue;
        }
        col = c;
        col_points = 1;
        fx = lx = X;
        fy = ly = mn = mx = Y;
    }
}

/* Band between lo and hi: per pixel column the union of the linearly interpolated band, so dense data
 * keeps its extremes. */
static me_status cov_band(plot_covbuf *cb, const lmap *m, const me_line_series *s, const double *lo, const double *hi,
                          me_error *err) {
    double *top = malloc(sizeof(double) * (size_t)cb->w * 2);
    if (!top) return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory drawing a band");
    double *bot = top + cb->w;
    for (int i = 0; i < cb->w; i++) {
        top[i] = INFINITY;
        bot[i] = -INFINITY;
    }
    int have_prev = 0;
    double pX = 0, pT = 0, pB = 0;
    for (size_t i = 0; i < s->n; i++) {
        double xv = sx_of(s, i);
        if (!(isfinite(xv) && isfinite(lo[i]) && isfinite(hi[i]))) {
            have_prev = 0;
            continue;
        }
        double X = plot_clampd(map_x(m, xv), -1e6, 1e6);
        double T = plot_clampd(map_y(m, hi[i]), -1e6, 1e6), B = plot_clampd(map_y(m, lo[i]), -1e6, 1e6);
        if (T > B) { double t = T; T = B; B = t; }
        int c = (int)floor(X);
        if (c >= 0 && c < cb->w) {
            if (T < top[c]) top[c] = T;
            if (B > bot[c]) bot[c] = B;
        }
        if (have_prev) { /* interpolate across the columns strictly between the two points */
            int c0 = (int)floor(pX < X ? pX : X), c1 = (int)floor(pX < X ? X : pX);
            for (int cc = plot_clampi(c0 + 1, 0, cb->w); cc < plot_clampi(c1, 0, cb->w); cc++) {
                double t = (cc + 0.5 - pX) / (X - pX);
                double tt = pT + t * (T - pT), bb = pB + t * (B - pB);
                if (tt < top[cc]) top[cc] = tt;
                if (bb > bot[cc]) bot[cc] = bb;
            }
        }
        have_prev = 1;
        pX = X;
        pT = T;
        pB = B;
    }
    for (int i = 0; i < cb->w; i++)
        if (bot[i] >= top[i]) plot_cov_vspan(cb, i, top[i], bot[i] + (bot[i] == top[i] ? 1e-6 : 0.0));
    free(top);
    return ME_OK;
}

static void range_add(double *lo, double *hi, const double *v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            if (v[i] < *lo) *lo = v[i];
            if (v[i] > *hi) *hi = v[i];
        }
}

/* Legend box size and the entries in it. */
static void legend_size(const me_font *f, const plot_layout *L, const me_line_chart *spec, int *w, int *h, int *n) {
    double tw = 0;
    *n = 0;
    for (int k = 0; k < spec->n_series; k++) {
        if (!plot_nonempty(spec->series[k].label)) continue;
        double x = me_font_text_width(f, L->px_legend, spec->series[k].label);
        if (x > tw) tw = x;
        (*n)++;
    }
    double row = L->px_legend * 1.55;
    *w = (int)ceil(10 + 26 * L->s + 8 + tw + 10);
    *h = (int)ceil(8 + row * *n + 4);
}

/* How much drawn data rectangle q (canvas coordinates, grown by 10 px: a legend touching a line hides
 * it as well) would hide: points along each line's segments every 3 pixels (weight 4), and along band
 * and envelope edges (weight 1). At most about 4000 points of a series are walked, so dense series cost
 * O(4000) per candidate. */
static long legend_overlap(const me_line_chart *spec, const lmap *m, me_rect p, me_rect q) {
    long hits = 0;
    double x0 = q.x - 10, x1 = q.x + q.w + 10, y0 = q.y - 10, y1 = q.y + q.h + 10;
    for (int k = 0; k < spec->n_series; k++) {
        const me_line_series *s = &spec->series[k];
        size_t stride = s->n > 4000 ? s->n / 4000 : 1;
        const double *ys[5] = {s->y, s->band_lo, s->band_hi, s->env_lo, s->env_hi};
        for (int a = 0; a < 5; a++) {
            if (!ys[a]) continue;
            int have = 0;
            double px = 0, py = 0;
            for (size_t i = 0; i < s->n; i += stride) {
                if (!isfinite(ys[a][i]) || !isfinite(sx_of(s, i))) {
                    have = 0;
                    continue;
                }
                double X = p.x + map_x(m, sx_of(s, i)), Y = p.y + map_y(m, ys[a][i]);
                double len = have ? hypot(X - px, Y - py) : 0;
                int steps = have ? (int)fmin(ceil(len / 3.0), 2000) : 0;
                for (int t = have ? 1 : 0; t <= steps; t++) {
                    double u = steps ? (double)t / steps : 1.0;
                    double sx = have ? px + u * (X - px) : X, sy = have ? py + u * (Y - py) : Y;
                    if (sx >= x0 && sx < x1 && sy >= y0 && sy < y1) hits += a == 0 ? 4 : 1;
                }
                have = 1;
                px = X;
                py = Y;
            }
        }
    }
    return hits;
}

static me_status draw_legend(plot_dc *d, const me_font *f, const plot_layout *L, const me_line_chart *spec,
                             const lmap *m, me_rect p, me_rect *out, me_error *err) {
    int lw, lh, n;
    memset(out, 0, sizeof *out);
    if (spec->legend == ME_LEGEND_NONE) return ME_OK;
    legend_size(f, L, spec, &lw, &lh, &n);
    if (n == 0 || lw > p.w - 20 || lh > p.h - 20) return ME_OK;
    int xl = p.x + 10, xc = p.x + (p.w - lw) / 2, xr = p.x + p.w - 10 - lw;
    int yt = p.y + 10, ym = p.y + (p.h - lh) / 2, yb = p.y + p.h - 10 - lh;
    /* the four corners first (upper right, upper left, lower right, lower left: ME_LEGEND_* order), then
     * the middles of the edges and the centre; a tie goes to the earlier place */
    me_rect cand[9] = {{xr, yt, lw, lh}, {xl, yt, lw, lh}, {xr, yb, lw, lh}, {xl, yb, lw, lh}, {xc, yt, lw, lh},
                       {xc, yb, lw, lh}, {xr, ym, lw, lh}, {xl, ym, lw, lh}, {xc, ym, lw, lh}};
    int pick = 0;
    if (spec->legend >= ME_LEGEND_UPPER_RIGHT && spec->legend <= ME_LEGEND_LOWER_LEFT) {
        pick = spec->legend - ME_LEGEND_UPPER_RIGHT;
    } else {
        long best = -1;
        for (int k = 0; k < 9; k++) {
            long o = legend_overlap(spec, m, p, cand[k]);
            if (best < 0 || o < best) {
                best = o;
                pick = k;
            }
        }
    }
    me_rect q = cand[pick];
    *out = q;
    plot_fill_rect(d, q.x, q.y, q.w, q.h, PLOT_COL_WHITE, 0.88);
    plot_stroke_rect(d, q.x, q.y, q.w, q.h, COL_LEGEND_EDGE);
    double row = L->px_legend * 1.55;
    int e = 0;
    for (int k = 0; k < spec->n_series; k++) {
        const me_line_series *s = &spec->series[k];
        if (!plot_nonempty(s->label)) continue;
        double cy = q.y + 6 + row * (e + 0.5);
        int sx = q.x + 10, sw = (int)(26 * L->s);
        if (s->env_lo && s->env_hi)
            plot_fill_rect(d, sx, (int)floor(cy - row * 0.38), sw, (int)ceil(row * 0.76), s->color, 0.12);
        if (s->band_lo && s->band_hi)
            plot_fill_rect(d, sx, (int)floor(cy - row * 0.25), sw, (int)ceil(row * 0.5), s->color, 0.25);
        plot_fill_rect(d, sx, (int)floor(cy) - 1, sw, 2, s->color, 1.0);
        me_status st = plot_draw_text(d, f, sx + sw + 8, cy, L->px_legend, PLOT_COL_TEXT, ME_TEXT_LEFT,
                                      ME_TEXT_MIDDLE, 0, s->label, err);
        if (st != ME_OK) return st;
        e++;
    }
    return ME_OK;
}

/* The chart, with y values (and a fixed y range) already in log10 units when spec->log_y. */
static me_status draw_line(me_canvas *c, const me_font *f, me_rect r, const me_line_chart *spec, me_plot_area *area,
                           me_error *err) {
    me_status st = ME_OK;
    if (spec->n_series < 0 || (spec->n_series > 0 && !spec->series))
        return me_error_set(err, ME_ERR_CONFIG, "plot: line chart: %d series with a NULL series array", spec->n_series);
    for (int k = 0; k < spec->n_series; k++) {
        const me_line_series *s = &spec->series[k];
        if (s->n > 0 && !s->y)
            return me_error_set(err, ME_ERR_CONFIG, "plot: series %d: %zu points but y is NULL", k, s->n);
        if (!s->band_lo != !s->band_hi || !s->env_lo != !s->env_hi)
            return me_error_set(err, ME_ERR_CONFIG, "plot: series %d: band and envelope need both lo and hi arrays", k);
    }
    if ((spec->fix_x && !(spec->x_min < spec->x_max)) || (spec->fix_y && !(spec->y_min < spec->y_max)))
        return me_error_set(err, ME_ERR_CONFIG, "plot: line chart: fixed axis range needs min < max");

    /* Data ranges: x exactly, y with 5% margins; a flat or empty range is widened around its value. */
    lmap m;
    double xl = INFINITY, xh = -INFINITY, yl = INFINITY, yh = -INFINITY;
    for (int k = 0; k < spec->n_series; k++) {
        const me_line_series *s = &spec->series[k];
        for (size_t i = 0; i < s->n; i++) {
            double xv = sx_of(s, i);
            if (!isfinite(xv)) continue;
            if (xv < xl) xl = xv;
            if (xv > xh) xh = xv;
        }
        range_add(&yl, &yh, s->y, s->n);
        range_add(&yl, &yh, s->band_lo, s->n);
        range_add(&yl, &yh, s->band_hi, s->n);
        range_add(&yl, &yh, s->env_lo, s->n);
        range_add(&yl, &yh, s->env_hi, s->n);
    }
    if (!(xl <= xh)) { xl = 0; xh = 1; }
    if (xl == xh) { xl -= 0.5; xh += 0.5; }
    if (!(yl <= yh)) { yl = 0; yh = 1; }
    if (yl == yh) {
        double h = fabs(yl) * 0.05 > 1e-3 ? fabs(yl) * 0.05 : 1e-3;
        yl -= h;
        yh += h;
    } else {
        double pad = (yh - yl) * 0.05;
        yl -= pad;
        yh += pad;
    }
    m.x_min = spec->fix_x ? spec->x_min : xl;
    m.x_max = spec->fix_x ? spec->x_max : xh;
    m.y_min = spec->fix_y ? spec->y_min : yl;
    m.y_max = spec->fix_y ? spec->y_max : yh;

    plot_layout L;
    plot_layout_init(&L, spec->font_scale, spec->title, spec->x_title, spec->y_title);
    me_rect p;
    p.y = r.y + L.top;
    p.h = r.h - L.top - L.bottom;
    plot_ticks ty, tx;
    if (spec->log_y) plot_make_log_ticks(&ty, f, L.px_tick, m.y_min, m.y_max, p.h, 0);
    else plot_make_ticks_fit(&ty, f, L.px_tick, m.y_min, m.y_max, plot_clampi(p.h / 75, 3, 10), 0.0, p.h, 0);
    int left = L.left_fixed + (int)ceil(plot_ticks_max_width(&ty, f, L.px_tick));
    p.x = r.x + left;
    /* Room on the right for half of the last x tick label. */
    int right = PLOT_PAD + (int)ceil(me_font_text_width(f, L.px_tick, "00000") / 2);
    if (spec->x_labels && spec->n_x_labels > 0 && spec->x_labels[spec->n_x_labels - 1]) {
        int half = (int)ceil(me_font_text_width(f, L.px_tick, spec->x_labels[spec->n_x_labels - 1]) / 2);
        if (PLOT_PAD + half > right) right = PLOT_PAD + half;
    }
    p.w = r.w - left - right;
    if (p.w < 40 || p.h < 30)
        return me_error_set(err, ME_ERR_CONFIG, "plot: line chart: %dx%d leaves no room for the plot, make it larger",
                            r.w, r.h);
    if (spec->x_labels && spec->n_x_labels > 0)
        plot_make_label_ticks(&tx, f, L.px_tick, spec->x_labels, spec->n_x_labels, p.w, 1);
    else
        plot_make_ticks_fit(&tx, f, L.px_tick, m.x_min, m.x_max, plot_clampi(p.w / 110, 3, 10), 0.0, p.w, 1);
    m.pw = p.w;
    m.ph = p.h;

    plot_dc d = {c, r};
    double xs[64], ys[64];
    for (int k = 0; k < tx.n; k++) xs[k] = p.x + map_x(&m, tx.v[k]);
    for (int k = 0; k < ty.n; k++) ys[k] = p.y + map_y(&m, ty.v[k]);

    /* Grid under everything. */
    for (int k = 0; k < tx.n; k++) plot_fill_rect(&d, (int)floor(xs[k]), p.y, 1, p.h, PLOT_COL_GRID, 1.0);
    for (int k = 0; k < ty.n; k++) plot_fill_rect(&d, p.x, (int)floor(ys[k]), p.w, 1, PLOT_COL_GRID, 1.0);

    plot_covbuf cb = {calloc((size_t)p.w * p.h, 1), p.w, p.h, 0, 0, 0, 0};
    if (!cb.a) return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory for a %dx%d plot", p.w, p.h);
    plot_cov_reset_box(&cb);
    plot_dc dp = {c, plot_rect_clip(p, r)};
    /* Bands and envelopes of all series first, so that no band hides another series' line. */
    for (int k = 0; k < spec->n_series && st == ME_OK; k++) {
        const me_line_series *s = &spec->series[k];
        if (s->env_lo && s->env_hi) {
            st = cov_band(&cb, &m, s, s->env_lo, s->env_hi, err);
            plot_cov_composite(&cb, &dp, p.x, p.y, s->color, 0.10);
            cov_polyline(&cb, &m, s, s->env_lo, 0.5);
            cov_polyline(&cb, &m, s, s->env_hi, 0.5);
            plot_cov_composite(&cb, &dp, p.x, p.y, plot_lighten(s->color, 0.45), 0.9);
        }
        if (st == ME_OK && s->band_lo && s->band_hi) {
            st = cov_band(&cb, &m, s, s->band_lo, s->band_hi, err);
            plot_cov_composite(&cb, &dp, p.x, p.y, s->color, 0.24);
        }
    }
    for (int k = 0; k < spec->n_series && st == ME_OK; k++) {
        const me_line_series *s = &spec->series[k];
        if (s->n == 0) continue;
        cov_polyline(&cb, &m, s, s->y, 1.0);
        plot_cov_composite(&cb, &dp, p.x, p.y, s->color, 1.0);
    }
    free(cb.a);
    if (st != ME_OK) return st;

    plot_draw_frame_ticks(&d, p, &tx, xs, &ty, ys);
    me_rect legend_rect;
    st = draw_legend(&d, f, &L, spec, &m, p, &legend_rect, err);
    if (st == ME_OK)
        st = plot_draw_axes_text(&d, f, &L, r, p, spec->title, spec->x_title, spec->y_title, &tx, xs, &ty, ys, err);
    if (st != ME_OK) return st;
    if (area) {
        area->plot = p;
        area->x_min = m.x_min;
        area->x_max = m.x_max;
        area->y_min = spec->log_y ? pow(10.0, m.y_min) : m.y_min;
        area->y_max = spec->log_y ? pow(10.0, m.y_max) : m.y_max;
        area->legend = legend_rect;
    }
    return ME_OK;
}


/* log10 of the positive finite values of v[n] into out (NaN elsewhere); NULL stays NULL. */
static const double *log_copy(const double *v, size_t n, double **at) {
    if (!v) return NULL;
    double *out = *at;
    for (size_t i = 0; i < n; i++) out[i] = v[i] > 0 && isfinite(v[i]) ? log10(v[i]) : NAN;
    *at += n;
    return out;
}

me_status me_chart_line(me_canvas *c, const me_font *f, me_rect r, const me_line_chart *spec, me_plot_area *area,
                        me_error *err) {
    if (area) memset(area, 0, sizeof *area);
    me_status st = plot_check_chart(c, f, &r, "line chart", err);
    if (st != ME_OK) return st;
    if (!spec->log_y) return draw_line(c, f, r, spec, area, err);
    if (spec->fix_y && !(spec->y_min > 0 && spec->y_min < spec->y_max))
        return me_error_set(err, ME_ERR_CONFIG, "plot: line chart: a fixed logarithmic y range needs 0 < min < max");
    if (spec->n_series < 0 || (spec->n_series > 0 && !spec->series))
        return me_error_set(err, ME_ERR_CONFIG, "plot: line chart: %d series with a NULL series array", spec->n_series);
    /* the same chart over log10 of every y value */
    size_t total = 0;
    for (int k = 0; k < spec->n_series; k++) total += 5 * spec->series[k].n;
    me_line_series *ser = malloc(sizeof *ser * (size_t)(spec->n_series + 1));
    double *buf = malloc(sizeof(double) * (total + 1)), *at = buf;
    if (!ser || !buf) {
        free(ser);
        free(buf);
        return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory for a logarithmic chart");
    }
    for (int k = 0; k < spec->n_series; k++) {
        const me_line_series *s = &spec->series[k];
        ser[k] = *s;
        ser[k].y = log_copy(s->y, s->n, &at);
        ser[k].band_lo = log_copy(s->band_lo, s->n, &at);
        ser[k].band_hi = log_copy(s->band_hi, s->n, &at);
        ser[k].env_lo = log_copy(s->env_lo, s->n, &at);
        ser[k].env_hi = log_copy(s->env_hi, s->n, &at);
    }
    me_line_chart logged = *spec;
    logged.series = ser;
    if (spec->fix_y) {
        logged.y_min = log10(spec->y_min);
        logged.y_max = log10(spec->y_max);
    }
    st = draw_line(c, f, r, &logged, area, err);
    free(ser);
    free(buf);
    return st;
}
