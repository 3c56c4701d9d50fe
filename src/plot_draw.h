/* Private to the chart renderer (src/plot_*.c): the drawing primitives, text, coverage buffer, ticks and
 * layout that the line chart and the heatmap share. Public API: include/minienc/plot.h.
 *
 * Drawing model: text is rendered into an 8-bit alpha mask and blended in one colour; series lines and
 * bands are rendered into a per-series coverage buffer over the plot area (max of coverages, so joints
 * and overlapping segments do not darken) and composited once. Everything is plain double arithmetic
 * in a fixed order, so output is deterministic. */
#ifndef MINIENC_PLOT_DRAW_H
#define MINIENC_PLOT_DRAW_H

#include "minienc/plot.h"

static const me_rgb PLOT_COL_TEXT = {34, 34, 34};
static const me_rgb PLOT_COL_AXIS = {80, 80, 80};
static const me_rgb PLOT_COL_GRID = {230, 230, 230};
static const me_rgb PLOT_COL_WHITE = {255, 255, 255};

/* Base text sizes in pixels (times font_scale). A line of TrueType text at pixel height px occupies px
 * (ascent + descent), which is what the layout reserves. */
#define PLOT_PX_TITLE 20.0
#define PLOT_PX_AXIS 15.0
#define PLOT_PX_TICK 13.0
#define PLOT_PX_LEGEND 13.0
#define PLOT_PAD 12
#define PLOT_TICK_LEN 5

static inline int plot_clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static inline double plot_clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }
static inline int plot_nonempty(const char *s) { return s && s[0]; }

/* ---- raster (plot_raster.c) ---- */

/* A canvas with a clip rectangle: every drawing call below stays inside clip. */
typedef struct {
    me_canvas *c;
    me_rect clip;
} plot_dc;

me_rect plot_rect_clip(me_rect a, me_rect b);
/* Blends col at alpha a (clamped to 1; nothing for a <= 0) into pixel (x, y) if it is inside the clip. */
void plot_blend(plot_dc *d, int x, int y, me_rgb col, double a);
void plot_fill_rect(plot_dc *d, int x, int y, int w, int h, me_rgb col, double a);
/* 1-pixel outline just inside rectangle (x, y, w, h). */
void plot_stroke_rect(plot_dc *d, int x, int y, int w, int h, me_rgb col);
/* c moved towards white by t (0..1). */
me_rgb plot_lighten(me_rgb c, double t);

/* 8-bit coverage over the plot area, with the bounding box of what was touched so that compositing
 * and clearing only visit that part. Coordinates are plot-local and continuous. */
typedef struct {
    unsigned char *a; /* [h * w] */
    int w, h;
    int x0, y0, x1, y1; /* touched box, inclusive; x0 > x1 when empty */
} plot_covbuf;

void plot_cov_reset_box(plot_covbuf *cb);
/* A segment of half-width hw with round caps, anti-aliased by distance to the centre line. */
void plot_cov_segment(plot_covbuf *cb, double ax, double ay, double bx, double by, double hw);
/* Vertical span [top, bot] in column i with fractional coverage at the ends. */
void plot_cov_vspan(plot_covbuf *cb, int i, double top, double bot);
/* Blends colour at alpha * coverage into the canvas (plot at (px, py)) and clears the buffer. */
void plot_cov_composite(plot_covbuf *cb, plot_dc *d, int px, int py, me_rgb col, double alpha);

/* ---- text (plot_text.c) ---- */

/* Draws text anchored at (x, y); see me_canvas_text. f must be loaded. */
me_status plot_draw_text(plot_dc *d, const me_font *f, double x, double y, double px, me_rgb col, int halign,
                         int valign, int vertical, const char *text, me_error *err);

/* ---- ticks and layout (plot_axes.c) ---- */

typedef struct {
    double v[64];
    int n;
    double step;
    char label[64][32];
} plot_ticks;

/* Labels for ticks whose values and step are set: fixed decimals for the step, or compact scientific
 * notation for very large or small values. */
void plot_format_ticks(plot_ticks *t);
/* Round ticks inside [lo, hi], about target of them, at multiples of a 1/2/5 x 10^k step >= min_step,
 * widened until the labels fit along length pixels (horizontal: label widths; vertical: line heights). */
void plot_make_ticks_fit(plot_ticks *t, const me_font *f, double px, double lo, double hi, int target,
                         double min_step, double length, int horizontal);
double plot_ticks_max_width(const plot_ticks *t, const me_font *f, double px);
/* Ticks at 0, 1, ..., n - 1 labelled labels[k] (copied, cut to fit the label buffer); every stride-th
 * one, the smallest stride whose labels fit along length pixels. */
void plot_make_label_ticks(plot_ticks *t, const me_font *f, double px, const char *const *labels, int n,
                           double length, int horizontal);
/* Ticks for a logarithmic axis over [lo, hi] given in log10 units: positions t->v in log10 units,
 * labels in data units ("0.001", "2", "1e-6"). Within one decade, round linear ticks; up to about two
 * and a half decades, 1, 2 and 5 x 10^k; beyond, powers of ten (every second or more when they would
 * not fit along length pixels). */
void plot_make_log_ticks(plot_ticks *t, const me_font *f, double px, double lo, double hi, double length,
                         int horizontal);

/* Margins around the plot area: title on top, y title and y tick labels on the left, x tick labels and
 * x title below. */
typedef struct {
    double s;                                     /* font scale */
    double px_title, px_axis, px_tick, px_legend; /* pixel sizes asked of the font */
    int top, bottom, left_fixed; /* left_fixed excludes the y tick labels, which depend on the ticks */
} plot_layout;

void plot_layout_init(plot_layout *L, double font_scale, const char *title, const char *xt, const char *yt);
/* Draws the title, the axis titles and the tick labels around plot rectangle p inside r. xs/ys give the
 * pixel position of each tick. */
me_status plot_draw_axes_text(plot_dc *d, const me_font *f, const plot_layout *L, me_rect r, me_rect p,
                              const char *title, const char *xt, const char *yt, const plot_ticks *tx,
                              const double *xs, const plot_ticks *ty, const double *ys, me_error *err);
/* Tick marks outside the plot frame and the frame itself. */
void plot_draw_frame_ticks(plot_dc *d, me_rect p, const plot_ticks *tx, const double *xs, const plot_ticks *ty,
                           const double *ys);
/* Checks what every chart needs before drawing: a loaded font and a drawing area r (clipped to the
 * canvas in place) of at least 120 x 80. what names the chart in the message. */
me_status plot_check_chart(me_canvas *c, const me_font *f, me_rect *r, const char *what, me_error *err);

#endif
