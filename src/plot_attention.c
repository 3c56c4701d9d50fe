/* Attention charts (declared in attention.h): one input's attention probabilities as a grid of
 * heatmaps, layers as rows and heads as columns, each query (down) by key (across) with the input's
 * tokens on both axes, one 0–1 colour bar. Drawn with the chart renderer's primitives (plot_draw.h). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minienc/attention.h"
#include "plot_draw.h"

#define MARGIN 18
#define TITLE_PX 17.0
#define NOTE_PX 12.0
#define HEAD_PX 13.0
#define PANEL_TARGET 230 /* pixels an S x S panel aims for */
#define CELL_MIN 5
#define CELL_MAX 46
#define GAP_X 18  /* between panels, besides the query labels */
#define GAP_Y 12  /* between panel rows, besides the key labels */
#define BAR_W 18
#define MIN_W 640
#define MAX_W 4000

static const me_rgb GREY = {110, 110, 110}, FRAME = {150, 150, 150};
#define INK PLOT_COL_TEXT

/* A sequential white-to-dark-blue scale (ColorBrewer "Blues", 9 classes): 0 is white, so the many
 * near-zero weights recede and the few large ones stand out. */
static me_rgb prob_color(double v) {
    static const unsigned char stops[9][3] = {{247, 251, 255}, {222, 235, 247}, {198, 219, 239},
                                              {158, 202, 225}, {107, 174, 214}, {66, 146, 198},
                                              {33, 113, 181},  {8, 81, 156},    {8, 48, 107}};
    if (!(v > 0.0)) v = 0.0; /* NaN too */
    if (v > 1.0) v = 1.0;
    double x = v * 8.0;
    int i = (int)x;
    if (i >= 8) i = 7;
    double t = x - i;
    me_rgb c;
    c.r = (unsigned char)lround(stops[i][0] + t * (stops[i + 1][0] - stops[i][0]));
    c.g = (unsigned char)lround(stops[i][1] + t * (stops[i + 1][1] - stops[i][1]));
    c.b = (unsigned char)lround(stops[i][2] + t * (stops[i + 1][2] - stops[i][2]));
    return c;
}

/* Cell borders: a 1-pixel frame just outside rectangle (x, y, w, h). */
static void frame(plot_dc *d, int x, int y, int w, int h, me_rgb col) {
    plot_stroke_rect(d, x - 1, y - 1, w + 2, h + 2, col);
}

/* The longest prefix of text (whole UTF-8 characters) that fits in width px, with "..." when cut. */
static void fit_text(const me_font *f, double px, const char *text, double width, char *out, size_t cap) {
    snprintf(out, cap, "%s", text);
    if (me_font_text_width(f, px, out) <= width) return;
    size_t n = strlen(out);
    while (n > 0) {
        n--;
        while (n > 0 && ((unsigned char)out[n] & 0xC0) == 0x80) n--; /* a character's first byte */
        if (n + 4 > cap) continue;
        memcpy(out + n, "...", 4);
        if (me_font_text_width(f, px, out) <= width) return;
    }
}

/* Every k-th token gets a label, k the smallest that keeps labels from overlapping. */
static int label_stride(double cell, double need) {
    int k = 1;
    while (k * cell < need && k < 1 << 20) k++;
    return k;
}

me_status me_attention_png(const me_attention *a, size_t idx, const char *title, const char *path, me_error *err) {
    if (idx >= a->n) return me_error_set(err, ME_ERR_USAGE, "attention chart: input %zu of %zu", idx, a->n);
    int len = me_attention_len(a, idx), L = a->layers, H = a->heads;
    if (len < 1) return me_error_set(err, ME_ERR_USAGE, "attention chart: input %zu has no tokens", idx);
    me_font font;
    me_error ferr = {0};
    me_status fst = me_font_load(&font, me_font_default_path(), &ferr);
    if (fst == ME_ERR_NOMEM) return me_error_set(err, fst, "%s", ferr.msg);
    if (fst)
        return me_error_set(err, ME_ERR_FONT, "%s: no chart drawn: %s; install the package %s", path, ferr.msg,
                            ME_FONT_PACKAGE);
    const int64_t *tok = a->tokens + idx * (size_t)a->s;

    /* sizes: square cells, labels as large as the cells allow */
    int cell = (int)lround((double)PANEL_TARGET / len);
    if (cell < CELL_MIN) cell = CELL_MIN;
    if (cell > CELL_MAX) cell = CELL_MAX;
    int panel = cell * len;
    double lab_px = cell * 0.5 < 9.0 ? 9.0 : cell * 0.5 > 13.0 ? 13.0 : cell * 0.5;
    double tok_w = 0.0;
    char lab[32];
    for (int j = 0; j < len; j++) {
        snprintf(lab, sizeof lab, "%" PRId64, tok[j]);
        double w = me_font_text_width(&font, lab_px, lab);
        if (w > tok_w) tok_w = w;
    }
    int q_stride = label_stride(cell, lab_px * 1.15), k_stride = label_stride(cell, tok_w + 4.0);
    int qlab_w = (int)ceil(tok_w) + 6, klab_h = (int)ceil(lab_px) + 6;
    int layer_w = (int)ceil(HEAD_PX) + 10;
    int col_w = qlab_w + panel + GAP_X, row_h = panel + klab_h + GAP_Y;
    int note_h = (int)ceil(NOTE_PX) + 5;
    int grid_x = MARGIN + layer_w, grid_y = MARGIN + (int)ceil(TITLE_PX) + 10 + 2 * note_h + 8 + (int)ceil(HEAD_PX) + 8;
    int bar_x = grid_x + H * col_w + 10;
    int bar_h = L * row_h - GAP_Y - klab_h;
    if (bar_h > 320) bar_h = 320;
    if (bar_h < 120) bar_h = 120;
    int width = bar_x + BAR_W + 8 + (int)ceil(me_font_text_width(&font, NOTE_PX, "0.75")) + 8 + (int)NOTE_PX + MARGIN;
    double title_w = me_font_text_width(&font, TITLE_PX, title ? title : "");
    if (width < MIN_W) width = MIN_W;
    if (width < title_w + 2 * MARGIN) width = (int)ceil(title_w) + 2 * MARGIN;
    if (width > MAX_W) width = MAX_W;
    int grid_h = L * row_h - GAP_Y;
    int height = grid_y + (grid_h > bar_h ? grid_h : bar_h) + MARGIN;
    if (width > 16384 || height > 16384) {
        me_font_free(&font);
        return me_error_set(err, ME_ERR_USAGE,
                            "attention chart: %d layers x %d heads of %d tokens need %d x %d pixels, more than 16384 "
                            "on a side", L, H, len, width, height);
    }
    me_canvas cv;
    me_status st = me_canvas_init(&cv, width, height, err);
    if (st) {
        me_font_free(&font);
        return st;
    }
    plot_dc dc = {&cv, me_canvas_rect(&cv)};

    /* title, and how to read the panels */
    char *line = malloc(4096);
    if (!line) {
        st = me_error_set(err, ME_ERR_NOMEM, "attention chart: out of memory");
        goto done;
    }
    int y = MARGIN;
    fit_text(&font, TITLE_PX, title ? title : "", width - 2.0 * MARGIN, line, 4096);
    st = me_canvas_text(&cv, &font, MARGIN, y, TITLE_PX, INK, ME_TEXT_LEFT, ME_TEXT_TOP, 0, line, err);
    y += (int)ceil(TITLE_PX) + 10;
    char fitted[4096];
    for (int k = 0; k < 2 && !st; k++, y += note_h) {
        if (k == 0)
            snprintf(line, 4096, "attention probabilities of %d layer%s x %d head%s", L, L == 1 ? "" : "s", H,
                     H == 1 ? "" : "s");
        else
            snprintf(line, 4096, "rows: queries (the token attending); columns: keys (the token attended to)");
        fit_text(&font, NOTE_PX, line, width - 2.0 * MARGIN, fitted, sizeof fitted);
        st = me_canvas_text(&cv, &font, MARGIN, y, NOTE_PX, GREY, ME_TEXT_LEFT, ME_TEXT_TOP, 0, fitted, err);
    }

    /* column headers and row labels */
    for (int h = 0; h < H && !st; h++) {
        snprintf(lab, sizeof lab, "head %d", h);
        st = me_canvas_text(&cv, &font, grid_x + h * col_w + qlab_w + panel / 2.0, grid_y - 8, HEAD_PX, INK,
                            ME_TEXT_CENTER, ME_TEXT_BASELINE, 0, lab, err);
    }
    for (int l = 0; l < L && !st; l++) {
        snprintf(lab, sizeof lab, "layer %d", l);
        st = me_canvas_text(&cv, &font, MARGIN + HEAD_PX / 2.0, grid_y + l * row_h + panel / 2.0, HEAD_PX, INK, 0, 0, 1,
                            lab, err);
    }

    /* the panels */
    for (int l = 0; l < L && !st; l++) {
        const float *w = me_attention_at(a, l, idx); /* [H, s, s] */
        for (int h = 0; h < H && !st; h++) {
            int px = grid_x + h * col_w + qlab_w, py = grid_y + l * row_h;
            const float *m = w + (size_t)h * (size_t)a->s * (size_t)a->s;
            for (int q = 0; q < len; q++)
                for (int k = 0; k < len; k++)
                    plot_fill_rect(&dc, px + k * cell, py + q * cell, cell, cell,
                                   prob_color(m[(size_t)q * (size_t)a->s + k]), 1.0);
            frame(&dc, px, py, panel, panel, FRAME);
            for (int q = 0; q < len && !st; q += q_stride) { /* query tokens down the left */
                snprintf(lab, sizeof lab, "%" PRId64, tok[q]);
                st = me_canvas_text(&cv, &font, px - 4, py + (q + 0.5) * cell, lab_px, INK, ME_TEXT_RIGHT,
                                    ME_TEXT_MIDDLE, 0, lab, err);
            }
            for (int k = 0; k < len && !st; k += k_stride) { /* key tokens along the bottom */
                snprintf(lab, sizeof lab, "%" PRId64, tok[k]);
                st = me_canvas_text(&cv, &font, px + (k + 0.5) * cell, py + panel + 4, lab_px, INK, ME_TEXT_CENTER,
                                    ME_TEXT_TOP, 0, lab, err);
            }
        }
    }

    /* the colour bar: 1 at the top, 0 at the bottom */
    int by = grid_y;
    for (int j = 0; j < bar_h && !st; j++)
        plot_fill_rect(&dc, bar_x, by + j, BAR_W, 1, prob_color(1.0 - (double)j / (bar_h - 1)), 1.0);
    frame(&dc, bar_x, by, BAR_W, bar_h, FRAME);
    for (int t = 0; t <= 4 && !st; t++) {
        double v = t / 4.0;
        int ty = by + (int)lround((1.0 - v) * (bar_h - 1));
        plot_fill_rect(&dc, bar_x + BAR_W, ty, 4, 1, INK, 1.0);
        snprintf(lab, sizeof lab, "%g", v);
        st = me_canvas_text(&cv, &font, bar_x + BAR_W + 7, ty, NOTE_PX, INK, ME_TEXT_LEFT, ME_TEXT_MIDDLE, 0, lab, err);
    }
    if (!st) {
        double lx = bar_x + BAR_W + 8 + me_font_text_width(&font, NOTE_PX, "0.75") + 6 + NOTE_PX / 2.0;
        st = me_canvas_text(&cv, &font, lx, by + bar_h / 2.0, NOTE_PX, GREY, 0, 0, 1, "probability", err);
    }
    if (!st) st = me_canvas_write_png(&cv, path, err);
done:
    free(line);
    me_canvas_free(&cv);
    me_font_free(&font);
    return st;
}
