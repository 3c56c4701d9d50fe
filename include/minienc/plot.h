/* Chart rendering to PNG: line charts (with ±std bands and min/max envelopes), diverging heatmaps and
 * several panels in one image. Depends only on the C library, stb (stb_truetype for text,
 * stb_image_write for PNG) and the private file module (atomic writes); no global state. Code:
 * src/plot_text.c (fonts, text), plot_raster.c (canvas, coverage buffer), plot_axes.c (ticks, layout),
 * plot_line.c, plot_heatmap.c (charts), plot_png.c (output); src/plot_draw.h is what they share.
 *
 * Typical use (one chart per image):
 *
 *     me_font font;  me_font_load(&font, me_font_default_path(), err);   // fails without the font file
 *     me_canvas cv;  me_canvas_init(&cv, ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, err);
 *     me_chart_line(&cv, &font, me_canvas_rect(&cv), &spec, NULL, err);
 *     me_canvas_write_png(&cv, "gamma.png", err);
 *     me_canvas_free(&cv);  me_font_free(&font);
 *
 * Panels: draw several charts into rectangles of one canvas (me_plot_grid_cell splits a canvas into a
 * grid), e.g. loss above validation accuracy, or γ beside β.
 *
 * Ownership: specs are plain structs of borrowed pointers; the chart functions only read them during
 * the call and keep nothing. A canvas owns its pixels (me_canvas_free); a font owns its file bytes
 * (me_font_free). Output is deterministic: the same inputs give byte-identical PNG files.
 *
 * Coordinates are in pixels, origin at the top-left corner; pixel (i, j) covers [i, i+1) x [j, j+1). */
#ifndef MINIENC_PLOT_H
#define MINIENC_PLOT_H

#include <stddef.h>

#include "minienc/status.h"

#define ME_PLOT_DEFAULT_W 1200
#define ME_PLOT_DEFAULT_H 700

/* ---- fonts ---------------------------------------------------------------------------------------- */

/* A TrueType font, loaded by the caller with me_font_load and released with me_font_free. Every chart
 * needs a loaded one: there is no fallback font. */
typedef struct {
    unsigned char *ttf; /* font file contents, owned; NULL when not loaded */
    void *info;         /* stbtt_fontinfo over ttf, owned; NULL when not loaded */
} me_font;

/* The compiled-in font path (MINIENC_FONT_PATH, DejaVu Sans) and the Debian package that installs it. */
const char *me_font_default_path(void);
#define ME_FONT_PACKAGE "fonts-dejavu-core"

/* Loads the TrueType font at path. Fails with ME_ERR_NOFILE when the file is missing or unreadable,
 * ME_ERR_FORMAT when it is not a TrueType font, ME_ERR_NOMEM, and ME_ERR_USAGE for a NULL path; f is
 * then not loaded (me_font_free is still safe). */
me_status me_font_load(me_font *f, const char *path, me_error *err);
void me_font_free(me_font *f);

/* Width in pixels of text (UTF-8) at pixel height px; 0 when f is not loaded. */
double me_font_text_width(const me_font *f, double px, const char *text);

/* ---- canvas --------------------------------------------------------------------------------------- */

typedef struct {
    unsigned char r, g, b;
} me_rgb;

typedef struct {
    int x, y, w, h;
} me_rect;

/* An RGB image: rgb[(y * w + x) * 3 + {0,1,2}], rows top to bottom, owned. */
typedef struct {
    int w, h;
    unsigned char *rgb;
} me_canvas;

/* Allocates a w x h canvas filled with white. w and h must be in 1..16384. */
me_status me_canvas_init(me_canvas *c, int w, int h, me_error *err);
void me_canvas_free(me_canvas *c);
void me_canvas_fill(me_canvas *c, me_rgb color);
/* The whole canvas as a rectangle. */
me_rect me_canvas_rect(const me_canvas *c);

/* Cell (row, col) of an nrows x ncols grid over area, for multi-panel images. The cells tile area
 * exactly (remainders go to the last row/column). */
me_rect me_plot_grid_cell(me_rect area, int nrows, int ncols, int row, int col);

enum { ME_TEXT_LEFT = 0, ME_TEXT_CENTER = 1, ME_TEXT_RIGHT = 2 };       /* horizontal anchor */
enum { ME_TEXT_TOP = 0, ME_TEXT_MIDDLE = 1, ME_TEXT_BASELINE = 2 };     /* vertical anchor: cap top, */
                                                                         /* cap middle, baseline     */
/* Draws UTF-8 text (e.g. a figure title over several panels) at pixel height px, anchored at (x, y).
 * vertical != 0 rotates it to read bottom to top, centred on (x, y) (anchors ignored). Characters
 * the font lacks are drawn as '?'. Fails on allocation and with ME_ERR_USAGE when f is not loaded. */
me_status me_canvas_text(me_canvas *c, const me_font *f, double x, double y, double px, me_rgb color,
                         int halign, int valign, int vertical, const char *text, me_error *err);

/* Encodes the canvas as PNG into *png (malloc'ed, the caller frees it with free()). */
me_status me_canvas_encode_png(const me_canvas *c, unsigned char **png, size_t *size, me_error *err);
/* Writes the canvas as a PNG file, atomically (temporary file in the same folder, fsync, rename). */
me_status me_canvas_write_png(const me_canvas *c, const char *path, me_error *err);

/* Colour i of a 10-colour qualitative palette (matplotlib's "tab10"); wraps around. */
me_rgb me_plot_palette(int i);

/* ---- charts --------------------------------------------------------------------------------------- */

/* What a chart used, so callers (and tests) can map data to pixels:
 *   line chart: pixel x of value v = plot.x + 0.5 + (v - x_min) / (x_max - x_min) * (plot.w - 1)
 *               pixel y of value v = plot.y + 0.5 + (y_max - v) / (y_max - y_min) * (plot.h - 1)
 *   heatmap:    x_min/x_max are the first/last step, y_min = 0 and y_max = rows - 1; pixel column i
 *               of plot shows matrix column floor((i + 0.5) * cols / plot.w) when cols < plot.w, else
 *               the mean of columns [i * cols / plot.w, (i + 1) * cols / plot.w) (integer division);
 *               rows likewise, dimension 0 at the top.
 * colorbar and legend are zero-sized when absent. */
typedef struct {
    me_rect plot;
    double x_min, x_max, y_min, y_max;
    me_rect colorbar;
    me_rect legend;
} me_plot_area;

/* One series of a line chart. All arrays are borrowed, have n entries and may contain NaN/Inf, which
 * break the line. x should be ascending (training steps). When there are more points than pixel
 * columns, each column keeps the min and max of its points, so single-step spikes stay visible. */
typedef struct {
    const char *label;  /* legend entry; NULL or "" = not listed */
    me_rgb color;
    const double *x;    /* [n] step; NULL = 0, 1, ..., n-1 */
    const double *y;    /* [n] the line (e.g. the mean) */
    size_t n;
    const double *band_lo, *band_hi; /* [n] optional, both or neither: e.g. mean ± std, translucent fill */
    const double *env_lo, *env_hi;   /* [n] optional, both or neither: e.g. min/max, lighter fill + thin
                                        edge lines */
} me_line_series;

enum {
    ME_LEGEND_AUTO = 0, /* of nine inside places (corners, edge middles, centre), the one over the least
                           drawn data: lines sampled every few pixels along their segments, bands */
    ME_LEGEND_NONE,
    ME_LEGEND_UPPER_RIGHT,
    ME_LEGEND_UPPER_LEFT,
    ME_LEGEND_LOWER_RIGHT,
    ME_LEGEND_LOWER_LEFT
};

typedef struct {
    const char *title, *x_title, *y_title; /* UTF-8, each may be NULL */
    const me_line_series *series;          /* [n_series], borrowed */
    int n_series;
    int fix_x, fix_y;                      /* 1 = use x_min..x_max / y_min..y_max as given; */
    double x_min, x_max, y_min, y_max;     /* 0 = fit the data (x exactly, y with 5% margins) */
    int legend;                            /* ME_LEGEND_* */
    double font_scale;                     /* text size factor; 0 = 1 */
    const char *const *x_labels;           /* [n_x_labels] optional: a categorical x axis, label k at
                                              x = k (every second, third, ... when they do not fit) */
    int n_x_labels;
    int log_y;                             /* 1 = logarithmic y axis: values <= 0 are not drawn (they
                                              break the line), ticks at 1, 2, 5 x 10^k or at powers of
                                              ten; y_min/y_max (fixed or in me_plot_area) stay in data
                                              units, pixel y of v = plot.y + 0.5 + (log10(y_max) −
                                              log10(v)) / (log10(y_max) − log10(y_min)) * (plot.h − 1) */
} me_line_chart;

/* Draws a line chart into rectangle r of the canvas (everything outside r is left untouched; r is
 * clipped to the canvas). area (may be NULL) receives the plot rectangle and axis ranges used.
 * Fails with ME_ERR_CONFIG on an inconsistent spec (n > 0 with NULL y, one band array without the
 * other, fixed range with min >= max or, with log_y, min <= 0, r too small for a plot: under 120 x 80),
 * ME_ERR_USAGE when f is not loaded, and ME_ERR_NOMEM. */
me_status me_chart_line(me_canvas *c, const me_font *f, me_rect r, const me_line_chart *spec,
                        me_plot_area *area, me_error *err);

typedef struct {
    const char *title, *x_title, *y_title, *colorbar_title; /* UTF-8, each may be NULL */
    const float *values; /* [rows * cols] row-major, borrowed: values[d * cols + s] = dimension d at
                            snapshot s; NaN cells are drawn grey */
    int rows, cols;      /* dimensions, snapshots; both >= 1 */
    const double *steps; /* [cols] step of each snapshot, ascending; NULL = 0, 1, ..., cols-1 */
    double center;       /* value drawn white: 1 for γ, 0 for β */
    double range;        /* colours saturate at center ± range; <= 0 or NaN = max |v - center| */
    double font_scale;   /* text size factor; 0 = 1 */
    const char *const *row_labels; /* [rows] optional: y tick labels, one per row (every second, third, ...
                                      when they do not fit), instead of row numbers */
    int sequential;      /* 1 = values from center up only: white to red, the colour bar from center to
                            center + range */
} me_heatmap_spec;

/* Draws a heatmap (blue below center, white at center, red above) with a colour bar into rectangle r.
 * Columns and rows are averaged when there are more of them than pixels and repeated (nearest) when
 * fewer. area as for me_chart_line. Fails with ME_ERR_CONFIG on a bad spec, ME_ERR_USAGE when f is not
 * loaded, and ME_ERR_NOMEM. */
me_status me_chart_heatmap(me_canvas *c, const me_font *f, me_rect r, const me_heatmap_spec *spec,
                           me_plot_area *area, me_error *err);

/* The heatmap colour for value v given center and range (exposed for tests and legends). */
me_rgb me_heatmap_color(double v, double center, double range);

#endif
