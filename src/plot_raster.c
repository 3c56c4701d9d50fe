/* Chart rasterisation: the canvas, clipped blending of pixels and rectangles, and the anti-aliased
 * coverage buffer that lines and bands are drawn into before they are composited. */
#include "plot_draw.h"

#include <math.h>
#include <stdlib.h>

/* ---- canvas ---- */

me_status me_canvas_init(me_canvas *c, int w, int h, me_error *err) {
    c->w = c->h = 0;
    c->rgb = NULL;
    if (w < 1 || h < 1 || w > 16384 || h > 16384)
        return me_error_set(err, ME_ERR_CONFIG, "plot: canvas size %dx%d, expected 1..16384 each", w, h);
    c->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!c->rgb) return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory for a %dx%d canvas", w, h);
    c->w = w;
    c->h = h;
    me_canvas_fill(c, PLOT_COL_WHITE);
    return ME_OK;
}

void me_canvas_free(me_canvas *c) {
    if (!c) return;
    free(c->rgb);
    c->rgb = NULL;
    c->w = c->h = 0;
}

void me_canvas_fill(me_canvas *c, me_rgb color) {
    size_t n = (size_t)c->w * (size_t)c->h;
    for (size_t i = 0; i < n; i++) {
        c->rgb[3 * i] = color.r;
        c->rgb[3 * i + 1] = color.g;
        c->rgb[3 * i + 2] = color.b;
    }
}

me_rect me_canvas_rect(const me_canvas *c) {
    me_rect r = {0, 0, c->w, c->h};
    return r;
}

me_rect me_plot_grid_cell(me_rect area, int nrows, int ncols, int row, int col) {
    if (nrows < 1) nrows = 1;
    if (ncols < 1) ncols = 1;
    row = plot_clampi(row, 0, nrows - 1);
    col = plot_clampi(col, 0, ncols - 1);
    int cw = area.w / ncols, ch = area.h / nrows;
    me_rect r = {area.x + col * cw, area.y + row * ch, cw, ch};
    if (col == ncols - 1) r.w = area.w - col * cw;
    if (row == nrows - 1) r.h = area.h - row * ch;
    return r;
}

me_rgb me_plot_palette(int i) {
    static const me_rgb pal[10] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
                                   {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                                   {188, 189, 34},  {23, 190, 207}};
    i %= 10;
    if (i < 0) i += 10;
    return pal[i];
}

/* ---- clipped drawing ---- */

me_rect plot_rect_clip(me_rect a, me_rect b) {
    int x0 = a.x > b.x ? a.x : b.x, y0 = a.y > b.y ? a.y : b.y;
    int x1 = a.x + a.w < b.x + b.w ? a.x + a.w : b.x + b.w;
    int y1 = a.y + a.h < b.y + b.h ? a.y + a.h : b.y + b.h;
    me_rect r = {x0, y0, x1 > x0 ? x1 - x0 : 0, y1 > y0 ? y1 - y0 : 0};
    return r;
}

void plot_blend(plot_dc *d, int x, int y, me_rgb col, double a) {
    if (a <= 0.0 || x < d->clip.x || y < d->clip.y || x >= d->clip.x + d->clip.w || y >= d->clip.y + d->clip.h)
        return;
    if (a > 1.0) a = 1.0;
    unsigned char *p = d->c->rgb + ((size_t)y * d->c->w + x) * 3;
    p[0] = (unsigned char)(p[0] + (col.r - p[0]) * a + 0.5);
    p[1] = (unsigned char)(p[1] + (col.g - p[1]) * a + 0.5);
    p[2] = (unsigned char)(p[2] + (col.b - p[2]) * a + 0.5);
}

void plot_fill_rect(plot_dc *d, int x, int y, int w, int h, me_rgb col, double a) {
    me_rect r = plot_rect_clip((me_rect){x, y, w, h}, d->clip);
    for (int j = r.y; j < r.y + r.h; j++)
        for (int i = r.x; i < r.x + r.w; i++) plot_blend(d, i, j, col, a);
}

void plot_stroke_rect(plot_dc *d, int x, int y, int w, int h, me_rgb col) {
    plot_fill_rect(d, x, y, w, 1, col, 1.0);
    plot_fill_rect(d, x, y + h - 1, w, 1, col, 1.0);
    plot_fill_rect(d, x, y, 1, h, col, 1.0);
    plot_fill_rect(d, x + w - 1, y, 1, h, col, 1.0);
}

me_rgb plot_lighten(me_rgb c, double t) {
    me_rgb o = {(unsigned char)(c.r + (255 - c.r) * t + 0.5), (unsigned char)(c.g + (255 - c.g) * t + 0.5),
                (unsigned char)(c.b + (255 - c.b) * t + 0.5)};
    return o;
}

/* ---- coverage buffer ---- */

void plot_cov_reset_box(plot_covbuf *cb) {
    cb->x0 = cb->y0 = 1 << 30;
    cb->x1 = cb->y1 = -1;
}

static void cov_put(plot_covbuf *cb, int i, int j, double c) {
    if (c <= 0.0) return;
    int v = (int)(c * 255.0 + 0.5);
    if (v > 255) v = 255;
    unsigned char *p = cb->a + (size_t)j * cb->w + i;
    if (v > *p) *p = (unsigned char)v;
    if (i < cb->x0) cb->x0 = i;
    if (i > cb->x1) cb->x1 = i;
    if (j < cb->y0) cb->y0 = j;
    if (j > cb->y1) cb->y1 = j;
}

void plot_cov_segment(plot_covbuf *cb, double ax, double ay, double bx, double by, double hw) {
    double r = hw + 1.0;
    double lo_x = (ax < bx ? ax : bx) - r, hi_x = (ax > bx ? ax : bx) + r;
    double lo_y = (ay < by ? ay : by) - r, hi_y = (ay > by ? ay : by) + r;
    if (hi_x < 0 || hi_y < 0 || lo_x >= cb->w || lo_y >= cb->h) return;
    int i0 = (int)floor(plot_clampd(lo_x, 0, cb->w - 1)), i1 = (int)floor(plot_clampd(hi_x, 0, cb->w - 1));
    int j0 = (int)floor(plot_clampd(lo_y, 0, cb->h - 1)), j1 = (int)floor(plot_clampd(hi_y, 0, cb->h - 1));
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (int j = j0; j <= j1; j++) {
        double py = j + 0.5;
        /* Restrict the row to where the centre line can be within r (saves work on long diagonals). */
        int ri0 = i0, ri1 = i1;
        if (fabs(dy) > 1e-9 && len2 > 0) {
            double t0 = (py - r - ay) / dy, t1 = (py + r - ay) / dy;
            if (t0 > t1) { double t = t0; t0 = t1; t1 = t; }
            t0 = plot_clampd(t0, 0, 1);
            t1 = plot_clampd(t1, 0, 1);
            double xa = ax + t0 * dx, xb = ax + t1 * dx;
            if (xa > xb) { double t = xa; xa = xb; xb = t; }
            double extra = r * sqrt(len2) / fabs(dy);
            if (extra > cb->w) extra = cb->w;
            ri0 = plot_clampi((int)floor(xa - extra), i0, i1);
            ri1 = plot_clampi((int)floor(xb + extra), i0, i1);
        }
        for (int i = ri0; i <= ri1; i++) {
            double qx = i + 0.5 - ax, qy = py - ay, t = len2 > 0 ? (qx * dx + qy * dy) / len2 : 0.0;
            t = plot_clampd(t, 0.0, 1.0);
            double ex = qx - t * dx, ey = qy - t * dy;
            cov_put(cb, i, j, plot_clampd(hw + 0.5 - sqrt(ex * ex + ey * ey), 0.0, 1.0));
        }
    }
}

void plot_cov_vspan(plot_covbuf *cb, int i, double top, double bot) {
    if (i < 0 || i >= cb->w || !(bot > top)) return;
    if (bot - top < 1.0) { /* keep hairline bands visible */
        double mid = (top + bot) / 2;
        top = mid - 0.5;
        bot = mid + 0.5;
    }
    int j0 = plot_clampi((int)floor(top), 0, cb->h - 1), j1 = plot_clampi((int)floor(bot), 0, cb->h - 1);
    if (bot < 0 || top >= cb->h) return;
    for (int j = j0; j <= j1; j++) {
        double a = (bot < j + 1 ? bot : j + 1) - (top > j ? top : j);
        cov_put(cb, i, j, plot_clampd(a, 0.0, 1.0));
    }
}

void plot_cov_composite(plot_covbuf *cb, plot_dc *d, int px, int py, me_rgb col, double alpha) {
    for (int j = cb->y0; j <= cb->y1; j++) {
        unsigned char *row = cb->a + (size_t)j * cb->w;
        for (int i = cb->x0; i <= cb->x1; i++) {
            if (row[i]) plot_blend(d, px + i, py + j, col, alpha * row[i] / 255.0);
            row[i] = 0;
        }
    }
    plot_cov_reset_box(cb);
}

