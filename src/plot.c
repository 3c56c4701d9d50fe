/* Chart rendering: see include/minienc/plot.h.
 *
 * Drawing model: text is rendered into an 8-bit alpha mask and blended in one colour; series lines and
 * bands are rendered into a per-series coverage buffer over the plot area (max of coverages, so joints
 * and overlapping segments do not darken) and composited once. Everything is plain double arithmetic
 * in a fixed order, so output is deterministic. */
#include "minienc/plot.h"
#include "file.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image_write.h>
#include <stb/stb_truetype.h>

#ifndef MINIENC_FONT_PATH
#define MINIENC_FONT_PATH "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#endif

static const me_rgb COL_TEXT = {34, 34, 34};
static const me_rgb COL_AXIS = {80, 80, 80};
static const me_rgb COL_GRID = {230, 230, 230};
static const me_rgb COL_WHITE = {255, 255, 255};
static const me_rgb COL_LEGEND_EDGE = {200, 200, 200};
static const me_rgb COL_NAN = {190, 190, 190};

/* Base text sizes in pixels (times font_scale). */
#define PX_TITLE 20.0
#define PX_AXIS 15.0
#define PX_TICK 13.0
#define PX_LEGEND 13.0
#define PAD 12
#define TICK_LEN 5

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }
static int nonempty(const char *s) { return s && s[0]; }

/* ================================ built-in bitmap font ================================ */

/* Printable ASCII 32..126, 5 columns x 8 rows each ('#' = ink); rows 0-6 sit on the baseline, row 7
 * is the descender. Own design, plain and legible. */
static const char *const GLYPHS[95] = {
    "..... ..... ..... ..... ..... ..... ..... .....", /*   */
    "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#.. .....", /* ! */
    ".#.#. .#.#. ..... ..... ..... ..... ..... .....", /* " */
    ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#. .....", /* # */
    "..#.. .#### #.#.. .###. ..#.# ####. ..#.. .....", /* $ */
    "##... ##..# ...#. ..#.. .#... #..## ...## .....", /* % */
    ".##.. #..#. #.#.. .#... #.#.# #..#. .##.# .....", /* & */
    "..#.. ..#.. ..... ..... ..... ..... ..... .....", /* ' */
    "...#. ..#.. .#... .#... .#... ..#.. ...#. .....", /* ( */
    ".#... ..#.. ...#. ...#. ...#. ..#.. .#... .....", /* ) */
    "..... ..#.. #.#.# .###. #.#.# ..#.. ..... .....", /* * */
    "..... ..#.. ..#.. ##### ..#.. ..#.. ..... .....", /* + */
    "..... ..... ..... ..... ..... .##.. ..#.. .#...", /* , */
    "..... ..... ..... ##### ..... ..... ..... .....", /* - */
    "..... ..... ..... ..... ..... .##.. .##.. .....", /* . */
    "..... ....# ...#. ..#.. .#... #.... ..... .....", /* / */
    ".###. #...# #..## #.#.# ##..# #...# .###. .....", /* 0 */
    "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###. .....", /* 1 */
    ".###. #...# ....# ...#. ..#.. .#... ##### .....", /* 2 */
    "##### ...#. ..#.. ...#. ....# #...# .###. .....", /* 3 */
    "...#. ..##. .#.#. #..#. ##### ...#. ...#. .....", /* 4 */
    "##### #.... ####. ....# ....# #...# .###. .....", /* 5 */
    "..##. .#... #.... ####. #...# #...# .###. .....", /* 6 */
    "##### ....# ...#. ..#.. .#... .#... .#... .....", /* 7 */
    ".###. #...# #...# .###. #...# #...# .###. .....", /* 8 */
    ".###. #...# #...# .#### ....# ...#. .##.. .....", /* 9 */
    "..... .##.. .##.. ..... .##.. .##.. ..... .....", /* : */
    "..... .##.. .##.. ..... .##.. ..#.. .#... .....", /* ; */
    "...#. ..#.. .#... #.... .#... ..#.. ...#. .....", /* < */
    "..... ..... ##### ..... ##### ..... ..... .....", /* = */
    ".#... ..#.. ...#. ....# ...#. ..#.. .#... .....", /* > */
    ".###. #...# ....# ...#. ..#.. ..... ..#.. .....", /* ? */
    ".###. #...# ....# .##.# #.#.# #.#.# .###. .....", /* @ */
    ".###. #...# #...# ##### #...# #...# #...# .....", /* A */
    "####. #...# #...# ####. #...# #...# ####. .....", /* B */
    ".###. #...# #.... #.... #.... #...# .###. .....", /* C */
    "###.. #..#. #...# #...# #...# #..#. ###.. .....", /* D */
    "##### #.... #.... ####. #.... #.... ##### .....", /* E */
    "##### #.... #.... ####. #.... #.... #.... .....", /* F */
    ".###. #...# #.... #.### #...# #...# .#### .....", /* G */
    "#...# #...# #...# ##### #...# #...# #...# .....", /* H */
    ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###. .....", /* I */
    "..### ...#. ...#. ...#. ...#. #..#. .##.. .....", /* J */
    "#...# #..#. #.#.. ##... #.#.. #..#. #...# .....", /* K */
    "#.... #.... #.... #.... #.... #.... ##### .....", /* L */
    "#...# ##.## #.#.# #.#.# #...# #...# #...# .....", /* M */
    "#...# #...# ##..# #.#.# #..## #...# #...# .....", /* N */
    ".###. #...# #...# #...# #...# #...# .###. .....", /* O */
    "####. #...# #...# ####. #.... #.... #.... .....", /* P */
    ".###. #...# #...# #...# #.#.# #..#. .##.# .....", /* Q */
    "####. #...# #...# ####. #.#.. #..#. #...# .....", /* R */
    ".#### #.... #.... .###. ....# ....# ####. .....", /* S */
    "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. .....", /* T */
    "#...# #...# #...# #...# #...# #...# .###. .....", /* U */
    "#...# #...# #...# #...# #...# .#.#. ..#.. .....", /* V */
    "#...# #...# #...# #.#.# #.#.# #.#.# .#.#. .....", /* W */
    "#...# #...# .#.#. ..#.. .#.#. #...# #...# .....", /* X */
    "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#.. .....", /* Y */
    "##### ....# ...#. ..#.. .#... #.... ##### .....", /* Z */
    ".###. .#... .#... .#... .#... .#... .###. .....", /* [ */
    "..... #.... .#... ..#.. ...#. ....# ..... .....", /* \ */
    ".###. ...#. ...#. ...#. ...#. ...#. .###. .....", /* ] */
    "..#.. .#.#. #...# ..... ..... ..... ..... .....", /* ^ */
    "..... ..... ..... ..... ..... ..... ..... #####", /* _ */
    ".#... ..#.. ..... ..... ..... ..... ..... .....", /* ` */
    "..... ..... .###. ....# .#### #...# .#### .....", /* a */
    "#.... #.... #.##. ##..# #...# #...# ####. .....", /* b */
    "..... ..... .###. #.... #.... #...# .###. .....", /* c */
    "....# ....# .##.# #..## #...# #...# .#### .....", /* d */
    "..... ..... .###. #...# ##### #.... .###. .....", /* e */
    "..##. .#..# .#... ###.. .#... .#... .#... .....", /* f */
    "..... ..... .#### #...# #...# .#### ....# .###.", /* g */
    "#.... #.... #.##. ##..# #...# #...# #...# .....", /* h */
    "..#.. ..... .##.. ..#.. ..#.. ..#.. .###. .....", /* i */
    "...#. ..... ..##. ...#. ...#. ...#. #..#. .##..", /* j */
    "#.... #.... #..#. #.#.. ##... #.#.. #..#. .....", /* k */
    ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###. .....", /* l */
    "..... ..... ##.#. #.#.# #.#.# #.#.# #.#.# .....", /* m */
    "..... ..... #.##. ##..# #...# #...# #...# .....", /* n */
    "..... ..... .###. #...# #...# #...# .###. .....", /* o */
    "..... ..... ####. #...# #...# ####. #.... #....", /* p */
    "..... ..... .#### #...# #...# .#### ....# ....#", /* q */
    "..... ..... #.##. ##..# #.... #.... #.... .....", /* r */
    "..... ..... .#### #.... .###. ....# ####. .....", /* s */
    ".#... .#... ###.. .#... .#... .#..# ..##. .....", /* t */
    "..... ..... #...# #...# #...# #..## .##.# .....", /* u */
    "..... ..... #...# #...# #...# .#.#. ..#.. .....", /* v */
    "..... ..... #...# #...# #.#.# #.#.# .#.#. .....", /* w */
    "..... ..... #...# .#.#. ..#.. .#.#. #...# .....", /* x */
    "..... ..... #...# #...# #...# .#### ....# .###.", /* y */
    "..... ..... ##### ...#. ..#.. .#... ##### .....", /* z */
    "...#. ..#.. ..#.. .#... ..#.. ..#.. ...#. .....", /* { */
    "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. .....", /* | */
    ".#... ..#.. ..#.. ...#. ..#.. ..#.. .#... .....", /* } */
    "..... ..... .#... #.#.# ...#. ..... ..... .....", /* ~ */
};

/* A few non-ASCII glyphs this project's charts use: γ and β (LayerNorm scale and offset), μ, σ, ±, ×
 * and the minus sign. */
static const struct {
    int cp;
    const char *rows;
} GLYPHS_EXTRA[] = {
    {0x03B3, "..... ..... #...# #...# .#.#. .#.#. ..#.. ..#.."}, /* γ */
    {0x03B2, ".###. #...# #..#. ####. #...# #...# ####. #...."}, /* β */
    {0x03BC, "..... ..... #...# #...# #...# #..## ###.# #...."}, /* μ */
    {0x03C3, "..... ..... .#### #..#. #...# #...# .###. ....."}, /* σ */
    {0x00B1, "..#.. ..#.. ##### ..#.. ..#.. ..... ##### ....."}, /* ± */
    {0x00D7, "..... #...# .#.#. ..#.. .#.#. #...# ..... ....."}, /* × */
    {0x2212, "..... ..... ..... ##### ..... ..... ..... ....."}, /* − */
};

static const char *builtin_glyph(int cp) {
    if (cp >= 32 && cp <= 126) return GLYPHS[cp - 32];
    for (size_t i = 0; i < sizeof GLYPHS_EXTRA / sizeof GLYPHS_EXTRA[0]; i++)
        if (GLYPHS_EXTRA[i].cp == cp) return GLYPHS_EXTRA[i].rows;
    return GLYPHS['?' - 32];
}

static int builtin_scale(double px) {
    int s = (int)floor(px / 7.0 + 0.5);
    return s < 1 ? 1 : s;
}

/* ================================ fonts and text ================================ */

const char *me_font_default_path(void) { return MINIENC_FONT_PATH; }

static void font_set_builtin(me_font *f) {
    f->ttf = NULL;
    f->info = NULL;
    f->builtin = 1;
}

me_status me_font_load(me_font *f, const char *path, me_error *err) {
    font_set_builtin(f);
    if (!path) return me_error_set(err, ME_ERR_USAGE, "font: no path given, using the built-in bitmap font");
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return me_error_set(err, ME_ERR_IO, "%s: cannot open font: %s; using the built-in bitmap font", path,
                            strerror(errno));
    unsigned char *buf = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (size == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 20;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(fp);
                return me_error_set(err, ME_ERR_NOMEM, "%s: out of memory reading font", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + size, 1, cap - size, fp);
        size += got;
        if (got == 0) break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        return me_error_set(err, ME_ERR_IO, "%s: read error; using the built-in bitmap font", path);
    }
    stbtt_fontinfo *info = malloc(sizeof *info);
    if (!info) {
        free(buf);
        return me_error_set(err, ME_ERR_NOMEM, "%s: out of memory loading font", path);
    }
    /* stb_truetype trusts the offset table; check the smallest header it reads (12 bytes + tables). */
    int off = size >= 12 ? stbtt_GetFontOffsetForIndex(buf, 0) : -1;
    if (off < 0 || (size_t)off + 12 > size || !stbtt_InitFont(info, buf, off)) {
        free(info);
        free(buf);
        return me_error_set(err, ME_ERR_FORMAT, "%s: not a TrueType font; using the built-in bitmap font", path);
    }
    f->ttf = buf;
    f->info = info;
    f->builtin = 0;
    return ME_OK;
}

void me_font_free(me_font *f) {
    if (!f) return;
    free(f->info);
    free(f->ttf);
    font_set_builtin(f);
}

/* Next code point of UTF-8 text; malformed bytes come out as '?'. */
static int utf8_next(const char **sp) {
    const unsigned char *s = (const unsigned char *)*sp;
    int c = s[0], n = 0, cp;
    if (c < 0x80) { *sp += 1; return c; }
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
    else { *sp += 1; return '?'; }
    for (int i = 1; i <= n; i++) {
        if ((s[i] & 0xC0) != 0x80) { *sp += i; return '?'; }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    *sp += n + 1;
    return cp;
}

/* TrueType glyph for cp, or '?' when the font lacks it. */
static int ttf_glyph(const stbtt_fontinfo *info, int cp) {
    int g = stbtt_FindGlyphIndex(info, cp);
    return g ? g : stbtt_FindGlyphIndex(info, '?');
}

double me_font_text_width(const me_font *f, double px, const char *text) {
    if (!text) return 0.0;
    if (f->builtin) {
        size_t n = 0;
        for (const char *s = text; *s;) { utf8_next(&s); n++; }
        int k = builtin_scale(px);
        return n ? (double)(6 * n - 1) * k : 0.0;
    }
    const stbtt_fontinfo *info = f->info;
    double scale = stbtt_ScaleForPixelHeight(info, (float)px), w = 0.0;
    int prev = 0;
    for (const char *s = text; *s;) {
        int g = ttf_glyph(info, utf8_next(&s)), adv, lsb;
        if (prev) w += scale * stbtt_GetGlyphKernAdvance(info, prev, g);
        stbtt_GetGlyphHMetrics(info, g, &adv, &lsb);
        w += scale * adv;
        prev = g;
    }
    return w;
}

/* Height a line of text at pixel height px occupies, for layout: px for TrueType (ascent + descent);
 * the scaled 8-row cell plus a row of spacing for the built-in font, which is taller than px. */
static double line_height(const me_font *f, double px) {
    if (!f->builtin) return px;
    int k = builtin_scale(px);
    return 9.0 * k > px ? 9.0 * k : px;
}

/* Text rendered to an alpha mask. The pen starts at x = 1; base is the baseline row; cap the height
 * of capital letters; width the advance width. */
typedef struct {
    unsigned char *a; /* [h * w] */
    int w, h, base;
    double cap, width;
} text_mask;

static me_status text_render(const me_font *f, double px, const char *text, text_mask *m, me_error *err) {
    memset(m, 0, sizeof *m);
    m->width = me_font_text_width(f, px, text);
    if (f->builtin) {
        int k = builtin_scale(px);
        m->w = (int)m->width + 2;
        m->h = 8 * k + 2;
        m->base = 7 * k + 1;
        m->cap = 7 * k;
        m->a = calloc((size_t)m->w * (size_t)m->h, 1);
        if (!m->a) return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory rendering text");
        int pen = 1;
        for (const char *s = text; *s;) {
            int cp = utf8_next(&s);
            const char *g = builtin_glyph(cp);
            for (int row = 0; row < 8; row++)
                for (int col = 0; col < 5; col++) {
                    if (g[row * 6 + col] != '#') continue;
                    for (int dy = 0; dy < k; dy++)
                        memset(m->a + (size_t)(1 + row * k + dy) * m->w + pen + col * k, 255, (size_t)k);
                }
            pen += 6 * k;
        }
        return ME_OK;
    }
    const stbtt_fontinfo *info = f->info;
    float scale = stbtt_ScaleForPixelHeight(info, (float)px);
    int asc, desc, gap, x0, y0, x1, y1;
    stbtt_GetFontVMetrics(info, &asc, &desc, &gap);
    m->base = (int)ceil(asc * scale) + 1;
    m->h = m->base + (int)ceil(-desc * scale) + 2;
    m->w = (int)ceil(m->width) + 4;
    if (stbtt_GetCodepointBox(info, 'H', &x0, &y0, &x1, &y1)) m->cap = y1 * scale;
    else m->cap = 0.7 * px;
    m->a = calloc((size_t)m->w * (size_t)m->h, 1);
    if (!m->a) return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory rendering text");
    unsigned char *tmp = NULL;
    size_t tmp_cap = 0;
    double pen = 1.0;
    int prev = 0;
    for (const char *s = text; *s;) {
        int g = ttf_glyph(info, utf8_next(&s)), adv, lsb;
        if (prev) pen += scale * stbtt_GetGlyphKernAdvance(info, prev, g);
        int ipen = (int)floor(pen);
        float shift = (float)(pen - ipen);
        stbtt_GetGlyphBitmapBoxSubpixel(info, g, scale, scale, shift, 0.0f, &x0, &y0, &x1, &y1);
        int gw = x1 - x0, gh = y1 - y0;
        if (gw > 0 && gh > 0) {
            if ((size_t)gw * gh > tmp_cap) {
                unsigned char *nt = realloc(tmp, (size_t)gw * gh);
                if (!nt) {
                    free(tmp);
                    free(m->a);
                    m->a = NULL;
                    return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory rendering text");
                }
                tmp = nt;
                tmp_cap = (size_t)gw * gh;
            }
            stbtt_MakeGlyphBitmapSubpixel(info, tmp, gw, gh, gw, scale, scale, shift, 0.0f, g);
            for (int j = 0; j < gh; j++) {
                int my = m->base + y0 + j;
                if (my < 0 || my >= m->h) continue;
                for (int i = 0; i < gw; i++) {
                    int mx = ipen + x0 + i;
                    if (mx < 0 || mx >= m->w) continue;
                    int v = m->a[(size_t)my * m->w + mx] + tmp[(size_t)j * gw + i];
                    m->a[(size_t)my * m->w + mx] = (unsigned char)(v > 255 ? 255 : v);
                }
            }
        }
        stbtt_GetGlyphHMetrics(info, g, &adv, &lsb);
        pen += scale * adv;
        prev = g;
    }
    free(tmp);
    return ME_OK;
}

/* ================================ canvas primitives ================================ */

me_status me_canvas_init(me_canvas *c, int w, int h, me_error *err) {
    c->w = c->h = 0;
    c->rgb = NULL;
    if (w < 1 || h < 1 || w > 16384 || h > 16384)
        return me_error_set(err, ME_ERR_CONFIG, "plot: canvas size %dx%d, expected 1..16384 each", w, h);
    c->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!c->rgb) return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory for a %dx%d canvas", w, h);
    c->w = w;
    c->h = h;
    me_canvas_fill(c, COL_WHITE);
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
    row = clampi(row, 0, nrows - 1);
    col = clampi(col, 0, ncols - 1);
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

static me_rect rect_clip(me_rect a, me_rect b) {
    int x0 = a.x > b.x ? a.x : b.x, y0 = a.y > b.y ? a.y : b.y;
    int x1 = a.x + a.w < b.x + b.w ? a.x + a.w : b.x + b.w;
    int y1 = a.y + a.h < b.y + b.h ? a.y + a.h : b.y + b.h;
    me_rect r = {x0, y0, x1 > x0 ? x1 - x0 : 0, y1 > y0 ? y1 - y0 : 0};
    return r;
}

/* A canvas with a clip rectangle: every drawing call below stays inside clip. */
typedef struct {
    me_canvas *c;
    me_rect clip;
} dc;

static void blend(dc *d, int x, int y, me_rgb col, double a) {
    if (a <= 0.0 || x < d->clip.x || y < d->clip.y || x >= d->clip.x + d->clip.w || y >= d->clip.y + d->clip.h)
        return;
    if (a > 1.0) a = 1.0;
    unsigned char *p = d->c->rgb + ((size_t)y * d->c->w + x) * 3;
    p[0] = (unsigned char)(p[0] + (col.r - p[0]) * a + 0.5);
    p[1] = (unsigned char)(p[1] + (col.g - p[1]) * a + 0.5);
    p[2] = (unsigned char)(p[2] + (col.b - p[2]) * a + 0.5);
}

static void fill_rect(dc *d, int x, int y, int w, int h, me_rgb col, double a) {
    me_rect r = rect_clip((me_rect){x, y, w, h}, d->clip);
    for (int j = r.y; j < r.y + r.h; j++)
        for (int i = r.x; i < r.x + r.w; i++) blend(d, i, j, col, a);
}

/* 1-pixel outline just inside rectangle (x, y, w, h). */
static void stroke_rect(dc *d, int x, int y, int w, int h, me_rgb col) {
    fill_rect(d, x, y, w, 1, col, 1.0);
    fill_rect(d, x, y + h - 1, w, 1, col, 1.0);
    fill_rect(d, x, y, 1, h, col, 1.0);
    fill_rect(d, x + w - 1, y, 1, h, col, 1.0);
}

/* Draws text anchored at (x, y); see me_canvas_text. */
static me_status draw_text(dc *d, const me_font *f, double x, double y, double px, me_rgb col, int halign,
                           int valign, int vertical, const char *text, me_error *err) {
    if (!nonempty(text)) return ME_OK;
    text_mask m;
    me_status st = text_render(f, px, text, &m, err);
    if (st != ME_OK) return st;
    if (!vertical) {
        double ax = halign == ME_TEXT_CENTER ? m.width / 2 : halign == ME_TEXT_RIGHT ? m.width : 0.0;
        double ay = valign == ME_TEXT_TOP ? m.base - m.cap : valign == ME_TEXT_MIDDLE ? m.base - m.cap / 2 : m.base;
        int ox = (int)floor(x - 1.0 - ax + 0.5), oy = (int)floor(y - ay + 0.5);
        for (int j = 0; j < m.h; j++)
            for (int i = 0; i < m.w; i++)
                if (m.a[(size_t)j * m.w + i]) blend(d, ox + i, oy + j, col, m.a[(size_t)j * m.w + i] / 255.0);
    } else {
        /* Rotated 90 degrees counter-clockwise: mask (i, j) goes to (ox + j, oy + w - 1 - i). */
        int ox = (int)floor(x - (m.base - m.cap / 2) + 0.5);
        int oy = (int)floor(y - (m.w - 2 - m.width / 2) + 0.5);
        for (int j = 0; j < m.h; j++)
            for (int i = 0; i < m.w; i++)
                if (m.a[(size_t)j * m.w + i])
                    blend(d, ox + j, oy + m.w - 1 - i, col, m.a[(size_t)j * m.w + i] / 255.0);
    }
    free(m.a);
    return ME_OK;
}

me_status me_canvas_text(me_canvas *c, const me_font *f, double x, double y, double px, me_rgb color,
                         int halign, int valign, int vertical, const char *text, me_error *err) {
    dc d = {c, me_canvas_rect(c)};
    return draw_text(&d, f, x, y, px, color, halign, valign, vertical, text, err);
}

/* ================================ coverage buffer ================================ */

/* 8-bit coverage over the plot area, with the bounding box of what was touched so that compositing
 * and clearing only visit that part. Coordinates are plot-local and continuous. */
typedef struct {
    unsigned char *a; /* [h * w] */
    int w, h;
    int x0, y0, x1, y1; /* touched box, inclusive; x0 > x1 when empty */
} covbuf;

static void cov_reset_box(covbuf *cb) {
    cb->x0 = cb->y0 = 1 << 30;
    cb->x1 = cb->y1 = -1;
}

static void cov_put(covbuf *cb, int i, int j, double c) {
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

/* A segment of half-width hw with round caps, anti-aliased by distance to the centre line. */
static void cov_segment(covbuf *cb, double ax, double ay, double bx, double by, double hw) {
    double r = hw + 1.0;
    double lo_x = (ax < bx ? ax : bx) - r, hi_x = (ax > bx ? ax : bx) + r;
    double lo_y = (ay < by ? ay : by) - r, hi_y = (ay > by ? ay : by) + r;
    if (hi_x < 0 || hi_y < 0 || lo_x >= cb->w || lo_y >= cb->h) return;
    int i0 = (int)floor(clampd(lo_x, 0, cb->w - 1)), i1 = (int)floor(clampd(hi_x, 0, cb->w - 1));
    int j0 = (int)floor(clampd(lo_y, 0, cb->h - 1)), j1 = (int)floor(clampd(hi_y, 0, cb->h - 1));
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (int j = j0; j <= j1; j++) {
        double py = j + 0.5;
        /* Restrict the row to where the centre line can be within r (saves work on long diagonals). */
        int ri0 = i0, ri1 = i1;
        if (fabs(dy) > 1e-9 && len2 > 0) {
            double t0 = (py - r - ay) / dy, t1 = (py + r - ay) / dy;
            if (t0 > t1) { double t = t0; t0 = t1; t1 = t; }
            t0 = clampd(t0, 0, 1);
            t1 = clampd(t1, 0, 1);
            double xa = ax + t0 * dx, xb = ax + t1 * dx;
            if (xa > xb) { double t = xa; xa = xb; xb = t; }
            double extra = r * sqrt(len2) / fabs(dy);
            if (extra > cb->w) extra = cb->w;
            ri0 = clampi((int)floor(xa - extra), i0, i1);
            ri1 = clampi((int)floor(xb + extra), i0, i1);
        }
        for (int i = ri0; i <= ri1; i++) {
            double qx = i + 0.5 - ax, qy = py - ay, t = len2 > 0 ? (qx * dx + qy * dy) / len2 : 0.0;
            t = clampd(t, 0.0, 1.0);
            double ex = qx - t * dx, ey = qy - t * dy;
            cov_put(cb, i, j, clampd(hw + 0.5 - sqrt(ex * ex + ey * ey), 0.0, 1.0));
        }
    }
}

/* Vertical span [top, bot] in column i with fractional coverage at the ends. */
static void cov_vspan(covbuf *cb, int i, double top, double bot) {
    if (i < 0 || i >= cb->w || !(bot > top)) return;
    if (bot - top < 1.0) { /* keep hairline bands visible */
        double mid = (top + bot) / 2;
        top = mid - 0.5;
        bot = mid + 0.5;
    }
    int j0 = clampi((int)floor(top), 0, cb->h - 1), j1 = clampi((int)floor(bot), 0, cb->h - 1);
    if (bot < 0 || top >= cb->h) return;
    for (int j = j0; j <= j1; j++) {
        double a = (bot < j + 1 ? bot : j + 1) - (top > j ? top : j);
        cov_put(cb, i, j, clampd(a, 0.0, 1.0));
    }
}

/* Blends colour at alpha * coverage into the canvas (plot at (px, py)) and clears the buffer. */
static void cov_composite(covbuf *cb, dc *d, int px, int py, me_rgb col, double alpha) {
    for (int j = cb->y0; j <= cb->y1; j++) {
        unsigned char *row = cb->a + (size_t)j * cb->w;
        for (int i = cb->x0; i <= cb->x1; i++) {
            if (row[i]) blend(d, px + i, py + j, col, alpha * row[i] / 255.0);
            row[i] = 0;
        }
    }
    cov_reset_box(cb);
}

/* ================================ axes: ticks and labels ================================ */

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

typedef struct {
    double v[64];
    int n;
    double step;
    char label[64][32];
} ticks;

static void format_ticks(ticks *t) {
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
static void make_ticks(ticks *t, double lo, double hi, int target, double min_step) {
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
    format_ticks(t);
}

/* As make_ticks, then widens the step until the labels fit along length pixels. */
static void make_ticks_fit(ticks *t, const me_font *f, double px, double lo, double hi, int target, double min_step,
                           double length, int horizontal) {
    make_ticks(t, lo, hi, target, min_step);
    for (int guard = 0; guard < 20 && t->n > 2; guard++) {
        double need = 0;
        for (int k = 0; k < t->n; k++) {
            double w = horizontal ? me_font_text_width(f, px, t->label[k]) + px : 2.2 * line_height(f, px);
            need += w;
        }
        if (need <= length * 0.9) break;
        make_ticks(t, lo, hi, t->n - 1, nice_step(t->step * 1.01));
    }
}

static double ticks_max_width(const ticks *t, const me_font *f, double px) {
    double w = 0;
    for (int k = 0; k < t->n; k++) {
        double x = me_font_text_width(f, px, t->label[k]);
        if (x > w) w = x;
    }
    return w;
}

/* Margins around the plot area: title on top, y title and y tick labels on the left, x tick labels and
 * x title below. */
typedef struct {
    double s; /* font scale */
    double px_title, px_axis, px_tick, px_legend; /* pixel sizes asked of the font */
    double lh_title, lh_axis, lh_tick, lh_legend; /* the line heights they occupy */
    int top, bottom, left_fixed; /* left_fixed excludes the y tick labels, which depend on the ticks */
} layout;

static void layout_init(layout *L, const me_font *f, double font_scale, const char *title, const char *xt,
                        const char *yt) {
    L->s = font_scale > 0 ? font_scale : 1.0;
    L->px_title = PX_TITLE * L->s;
    L->px_axis = PX_AXIS * L->s;
    L->px_tick = PX_TICK * L->s;
    L->px_legend = PX_LEGEND * L->s;
    L->lh_title = line_height(f, L->px_title);
    L->lh_axis = line_height(f, L->px_axis);
    L->lh_tick = line_height(f, L->px_tick);
    L->lh_legend = line_height(f, L->px_legend);
    L->top = PAD + (nonempty(title) ? (int)ceil(L->lh_title * 1.6) : 6);
    L->bottom = PAD + TICK_LEN + 6 + (int)ceil(L->lh_tick * 1.1) + (nonempty(xt) ? (int)ceil(L->lh_axis * 1.7) : 0);
    L->left_fixed = PAD + TICK_LEN + 8 + (nonempty(yt) ? (int)ceil(L->lh_axis * 1.6) : 0);
}

/* Draws the title, the axis titles and the tick labels around plot rectangle p. xs/ys give the pixel
 * position of each tick. */
static me_status draw_axes_text(dc *d, const me_font *f, const layout *L, me_rect r, me_rect p, const char *title,
                                const char *xt, const char *yt, const ticks *tx, const double *xs, const ticks *ty,
                                const double *ys, me_error *err) {
    me_status st = ME_OK;
    if (nonempty(title))
        st = draw_text(d, f, p.x + p.w / 2.0, r.y + PAD, L->px_title, COL_TEXT, ME_TEXT_CENTER, ME_TEXT_TOP, 0,
                       title, err);
    double tick_label_y = p.y + p.h + TICK_LEN + 5;
    for (int k = 0; k < tx->n && st == ME_OK; k++)
        st = draw_text(d, f, xs[k], tick_label_y, L->px_tick, COL_TEXT, ME_TEXT_CENTER, ME_TEXT_TOP, 0,
                       tx->label[k], err);
    for (int k = 0; k < ty->n && st == ME_OK; k++)
        st = draw_text(d, f, p.x - TICK_LEN - 5, ys[k], L->px_tick, COL_TEXT, ME_TEXT_RIGHT, ME_TEXT_MIDDLE, 0,
                       ty->label[k], err);
    if (st == ME_OK && nonempty(xt))
        st = draw_text(d, f, p.x + p.w / 2.0, r.y + r.h - PAD, L->px_axis, COL_TEXT, ME_TEXT_CENTER,
                       ME_TEXT_BASELINE, 0, xt, err);
    if (st == ME_OK && nonempty(yt))
        st = draw_text(d, f, r.x + PAD + L->lh_axis * 0.5, p.y + p.h / 2.0, L->px_axis, COL_TEXT, 0, 0, 1, yt, err);
    return st;
}

/* Tick marks outside the plot frame and the frame itself. */
static void draw_frame_ticks(dc *d, me_rect p, const ticks *tx, const double *xs, const ticks *ty,
                             const double *ys) {
    for (int k = 0; k < tx->n; k++) fill_rect(d, (int)floor(xs[k]), p.y + p.h, 1, TICK_LEN, COL_AXIS, 1.0);
    for (int k = 0; k < ty->n; k++) fill_rect(d, p.x - TICK_LEN, (int)floor(ys[k]), TICK_LEN, 1, COL_AXIS, 1.0);
    stroke_rect(d, p.x - 1, p.y - 1, p.w + 2, p.h + 2, COL_AXIS);
}

/* ================================ line chart ================================ */

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
static void cov_polyline(covbuf *cb, const lmap *m, const me_line_series *s, const double *y, double hw) {
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
                X = clampd(map_x(m, xv), -1e6, 1e6);
                Y = clampd(map_y(m, yv), -1e6, 1e6);
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
            if (have_prev) cov_segment(cb, prev_x, prev_y, fx, fy, hw);
            else if (col_points == 1 && (end || !ok))
                cov_segment(cb, fx, fy, fx, fy, 2.0 * hw + 0.5); /* an isolated point: a visible dot */
            else cov_segment(cb, fx, fy, fx, fy, hw);
            if (mx > mn) cov_segment(cb, col + 0.5, mn, col + 0.5, mx, hw);
            if (lx != fx || ly != fy) cov_segment(cb, col + 0.5, ly, lx, ly, hw);
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
static me_status cov_band(covbuf *cb, const lmap *m, const me_line_series *s, const double *lo, const double *hi,
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
        double X = clampd(map_x(m, xv), -1e6, 1e6);
        double T = clampd(map_y(m, hi[i]), -1e6, 1e6), B = clampd(map_y(m, lo[i]), -1e6, 1e6);
        if (T > B) { double t = T; T = B; B = t; }
        int c = (int)floor(X);
        if (c >= 0 && c < cb->w) {
            if (T < top[c]) top[c] = T;
            if (B > bot[c]) bot[c] = B;
        }
        if (have_prev) { /* interpolate across the columns strictly between the two points */
            int c0 = (int)floor(pX < X ? pX : X), c1 = (int)floor(pX < X ? X : pX);
            for (int cc = clampi(c0 + 1, 0, cb->w); cc < clampi(c1, 0, cb->w); cc++) {
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
        if (bot[i] >= top[i]) cov_vspan(cb, i, top[i], bot[i] + (bot[i] == top[i] ? 1e-6 : 0.0));
    free(top);
    return ME_OK;
}

static me_rgb lighten(me_rgb c, double t) {
    me_rgb o = {(unsigned char)(c.r + (255 - c.r) * t + 0.5), (unsigned char)(c.g + (255 - c.g) * t + 0.5),
                (unsigned char)(c.b + (255 - c.b) * t + 0.5)};
    return o;
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
static void legend_size(const me_font *f, const layout *L, const me_line_chart *spec, int *w, int *h, int *n) {
    double tw = 0;
    *n = 0;
    for (int k = 0; k < spec->n_series; k++) {
        if (!nonempty(spec->series[k].label)) continue;
        double x = me_font_text_width(f, L->px_legend, spec->series[k].label);
        if (x > tw) tw = x;
        (*n)++;
    }
    double row = L->lh_legend * 1.55;
    *w = (int)ceil(10 + 26 * L->s + 8 + tw + 10);
    *h = (int)ceil(8 + row * *n + 4);
}

/* Number of (sampled) data points of all series inside rectangle q (canvas coordinates). */
static long legend_overlap(const me_line_chart *spec, const lmap *m, me_rect p, me_rect q) {
    long hits = 0;
    for (int k = 0; k < spec->n_series; k++) {
        const me_line_series *s = &spec->series[k];
        size_t stride = s->n > 4000 ? s->n / 4000 : 1;
        for (size_t i = 0; i < s->n; i += stride) {
            const double *ys[5] = {s->y, s->band_lo, s->band_hi, s->env_lo, s->env_hi};
            for (int a = 0; a < 5; a++) {
                if (!ys[a] || !isfinite(ys[a][i]) || !isfinite(sx_of(s, i))) continue;
                double X = p.x + map_x(m, sx_of(s, i)), Y = p.y + map_y(m, ys[a][i]);
                if (X >= q.x - 4 && X < q.x + q.w + 4 && Y >= q.y - 4 && Y < q.y + q.h + 4) hits += a == 0 ? 4 : 1;
            }
        }
    }
    return hits;
}

static me_status draw_legend(dc *d, const me_font *f, const layout *L, const me_line_chart *spec, const lmap *m,
                             me_rect p, me_rect *out, me_error *err) {
    int lw, lh, n;
    memset(out, 0, sizeof *out);
    if (spec->legend == ME_LEGEND_NONE) return ME_OK;
    legend_size(f, L, spec, &lw, &lh, &n);
    if (n == 0 || lw > p.w - 20 || lh > p.h - 20) return ME_OK;
    me_rect cand[4] = {{p.x + p.w - 10 - lw, p.y + 10, lw, lh}, /* upper right, upper left, lower right, lower left */
                       {p.x + 10, p.y + 10, lw, lh},
                       {p.x + p.w - 10 - lw, p.y + p.h - 10 - lh, lw, lh},
                       {p.x + 10, p.y + p.h - 10 - lh, lw, lh}};
    int pick = 0;
    if (spec->legend >= ME_LEGEND_UPPER_RIGHT && spec->legend <= ME_LEGEND_LOWER_LEFT) {
        pick = spec->legend - ME_LEGEND_UPPER_RIGHT;
    } else {
        long best = -1;
        for (int k = 0; k < 4; k++) {
            long o = legend_overlap(spec, m, p, cand[k]);
            if (best < 0 || o < best) {
                best = o;
                pick = k;
            }
        }
    }
    me_rect q = cand[pick];
    *out = q;
    fill_rect(d, q.x, q.y, q.w, q.h, COL_WHITE, 0.88);
    stroke_rect(d, q.x, q.y, q.w, q.h, COL_LEGEND_EDGE);
    double row = L->lh_legend * 1.55;
    int e = 0;
    for (int k = 0; k < spec->n_series; k++) {
        const me_line_series *s = &spec->series[k];
        if (!nonempty(s->label)) continue;
        double cy = q.y + 6 + row * (e + 0.5);
        int sx = q.x + 10, sw = (int)(26 * L->s);
        if (s->env_lo && s->env_hi)
            fill_rect(d, sx, (int)floor(cy - row * 0.38), sw, (int)ceil(row * 0.76), s->color, 0.12);
        if (s->band_lo && s->band_hi)
            fill_rect(d, sx, (int)floor(cy - row * 0.25), sw, (int)ceil(row * 0.5), s->color, 0.25);
        fill_rect(d, sx, (int)floor(cy) - 1, sw, 2, s->color, 1.0);
        me_status st = draw_text(d, f, sx + sw + 8, cy, L->px_legend, COL_TEXT, ME_TEXT_LEFT, ME_TEXT_MIDDLE, 0,
                                 s->label, err);
        if (st != ME_OK) return st;
        e++;
    }
    return ME_OK;
}

static me_status check_rect(me_canvas *c, me_rect *r, const char *what, me_error *err) {
    *r = rect_clip(*r, me_canvas_rect(c));
    if (r->w < 120 || r->h < 80)
        return me_error_set(err, ME_ERR_CONFIG, "plot: %s: drawing area %dx%d is too small, expected at least 120x80",
                            what, r->w, r->h);
    return ME_OK;
}

me_status me_chart_line(me_canvas *c, const me_font *f, me_rect r, const me_line_chart *spec, me_plot_area *area,
                        me_error *err) {
    if (area) memset(area, 0, sizeof *area);
    me_status st = check_rect(c, &r, "line chart", err);
    if (st != ME_OK) return st;
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

    layout L;
    layout_init(&L, f, spec->font_scale, spec->title, spec->x_title, spec->y_title);
    me_rect p;
    p.y = r.y + L.top;
    p.h = r.h - L.top - L.bottom;
    ticks ty, tx;
    make_ticks_fit(&ty, f, L.px_tick, m.y_min, m.y_max, clampi(p.h / 75, 3, 10), 0.0, p.h, 0);
    int left = L.left_fixed + (int)ceil(ticks_max_width(&ty, f, L.px_tick));
    p.x = r.x + left;
    /* Room on the right for half of the last x tick label. */
    int right = PAD + (int)ceil(me_font_text_width(f, L.px_tick, "00000") / 2);
    p.w = r.w - left - right;
    if (p.w < 40 || p.h < 30)
        return me_error_set(err, ME_ERR_CONFIG, "plot: line chart: %dx%d leaves no room for the plot, make it larger",
                            r.w, r.h);
    make_ticks_fit(&tx, f, L.px_tick, m.x_min, m.x_max, clampi(p.w / 110, 3, 10), 0.0, p.w, 1);
    m.pw = p.w;
    m.ph = p.h;

    dc d = {c, r};
    double xs[64], ys[64];
    for (int k = 0; k < tx.n; k++) xs[k] = p.x + map_x(&m, tx.v[k]);
    for (int k = 0; k < ty.n; k++) ys[k] = p.y + map_y(&m, ty.v[k]);

    /* Grid under everything. */
    for (int k = 0; k < tx.n; k++) fill_rect(&d, (int)floor(xs[k]), p.y, 1, p.h, COL_GRID, 1.0);
    for (int k = 0; k < ty.n; k++) fill_rect(&d, p.x, (int)floor(ys[k]), p.w, 1, COL_GRID, 1.0);

    covbuf cb = {calloc((size_t)p.w * p.h, 1), p.w, p.h, 0, 0, 0, 0};
    if (!cb.a) return me_error_set(err, ME_ERR_NOMEM, "plot: out of memory for a %dx%d plot", p.w, p.h);
    cov_reset_box(&cb);
    dc dp = {c, rect_clip(p, r)};
    /* Bands and envelopes of all series first, so that no band hides another series' line. */
    for (int k = 0; k < spec->n_series && st == ME_OK; k++) {
        const me_line_series *s = &spec->series[k];
        if (s->env_lo && s->env_hi) {
            st = cov_band(&cb, &m, s, s->env_lo, s->env_hi, err);
            cov_composite(&cb, &dp, p.x, p.y, s->color, 0.10);
            cov_polyline(&cb, &m, s, s->env_lo, 0.5);
            cov_polyline(&cb, &m, s, s->env_hi, 0.5);
            cov_composite(&cb, &dp, p.x, p.y, lighten(s->color, 0.45), 0.9);
        }
        if (st == ME_OK && s->band_lo && s->band_hi) {
            st = cov_band(&cb, &m, s, s->band_lo, s->band_hi, err);
            cov_composite(&cb, &dp, p.x, p.y, s->color, 0.24);
        }
    }
    for (int k = 0; k < spec->n_series && st == ME_OK; k++) {
        const me_line_series *s = &spec->series[k];
        if (s->n == 0) continue;
        cov_polyline(&cb, &m, s, s->y, 1.0);
        cov_composite(&cb, &dp, p.x, p.y, s->color, 1.0);
    }
    free(cb.a);
    if (st != ME_OK) return st;

    draw_frame_ticks(&d, p, &tx, xs, &ty, ys);
    me_rect legend_rect;
    st = draw_legend(&d, f, &L, spec, &m, p, &legend_rect, err);
    if (st == ME_OK)
        st = draw_axes_text(&d, f, &L, r, p, spec->title, spec->x_title, spec->y_title, &tx, xs, &ty, ys, err);
    if (st != ME_OK) return st;
    if (area) {
        area->plot = p;
        area->x_min = m.x_min;
        area->x_max = m.x_max;
        area->y_min = m.y_min;
        area->y_max = m.y_max;
        area->legend = legend_rect;
    }
    return ME_OK;
}

/* ================================ heatmap ================================ */

/* ColorBrewer RdBu, from blue (low) through near-white to red (high). */
static const me_rgb DIVERGING[11] = {{5, 48, 97},    {33, 102, 172},  {67, 147, 195},  {146, 197, 222},
                                     {209, 229, 240}, {247, 247, 247}, {253, 219, 199}, {244, 165, 130},
                                     {214, 96, 77},   {178, 24, 43},   {103, 0, 31}};

me_rgb me_heatmap_color(double v, double center, double range) {
    if (!isfinite(v)) return COL_NAN;
    double t = range > 0 ? 0.5 + (v - center) / (2.0 * range) : 0.5;
    t = clampd(t, 0.0, 1.0) * 10.0;
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
    me_status st = check_rect(c, &r, "heatmap", err);
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

    layout L;
    layout_init(&L, f, spec->font_scale, spec->title, spec->x_title, spec->y_title);
    me_rect p;
    p.y = r.y + L.top;
    p.h = r.h - L.top - L.bottom;
    ticks ty, tx, tc;
    make_ticks_fit(&ty, f, L.px_tick, 0, rows - 1, clampi(p.h / 55, 2, 10), 1.0, p.h, 0);
    make_ticks_fit(&tc, f, L.px_tick, center - range, center + range, clampi(p.h / 60, 3, 9), 0.0, p.h, 0);
    int left = L.left_fixed + (int)ceil(ticks_max_width(&ty, f, L.px_tick));
    int bar_w = (int)(16 * L.s), bar_gap = (int)(18 * L.s);
    int right = bar_gap + bar_w + TICK_LEN + 5 + (int)ceil(ticks_max_width(&tc, f, L.px_tick)) + 8 +
                (nonempty(spec->colorbar_title) ? (int)ceil(L.lh_axis * 1.5) : 0) + PAD;
    p.x = r.x + left;
    p.w = r.w - left - right;
    if (p.w < 40 || p.h < 30)
        return me_error_set(err, ME_ERR_CONFIG, "plot: heatmap: %dx%d leaves no room for the plot, make it larger", r.w,
                            r.h);
    if (s1 > s0) make_ticks_fit(&tx, f, L.px_tick, s0, s1, clampi(p.w / 110, 3, 10), spec->steps ? 0.0 : 1.0, p.w, 1);
    else {
        tx.n = 1;
        tx.v[0] = s0;
        tx.step = fabs(s0) > 0 ? fabs(s0) : 1.0;
        format_ticks(&tx);
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
    dc d = {c, r};
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
            blend(&d, p.x + i, p.y + j, me_heatmap_color(n ? sum / n : NAN, center, range), 1.0);
        }
    }
    free(colred);

    double xs[64], ys[64], cs[64];
    for (int k = 0; k < tx.n; k++) xs[k] = p.x + (step_to_col(spec->steps, cols, tx.v[k]) + 0.5) * p.w / cols;
    for (int k = 0; k < ty.n; k++) ys[k] = p.y + (ty.v[k] + 0.5) * p.h / rows;
    draw_frame_ticks(&d, p, &tx, xs, &ty, ys);

    /* Colour bar: high values on top. */
    me_rect bar = {p.x + p.w + bar_gap, p.y, bar_w, p.h};
    for (int j = 0; j < bar.h; j++) {
        double v = center + range - (j + 0.5) / bar.h * 2.0 * range;
        fill_rect(&d, bar.x, bar.y + j, bar.w, 1, me_heatmap_color(v, center, range), 1.0);
    }
    stroke_rect(&d, bar.x - 1, bar.y - 1, bar.w + 2, bar.h + 2, COL_AXIS);
    double label_w = ticks_max_width(&tc, f, L.px_tick);
    for (int k = 0; k < tc.n && st == ME_OK; k++) {
        cs[k] = bar.y + (center + range - tc.v[k]) / (2.0 * range) * (bar.h - 1) + 0.5;
        fill_rect(&d, bar.x + bar.w + 1, (int)floor(cs[k]), TICK_LEN, 1, COL_AXIS, 1.0);
        st = draw_text(&d, f, bar.x + bar.w + 1 + TICK_LEN + 4, cs[k], L.px_tick, COL_TEXT, ME_TEXT_LEFT,
                       ME_TEXT_MIDDLE, 0, tc.label[k], err);
    }
    if (st == ME_OK && nonempty(spec->colorbar_title))
        st = draw_text(&d, f, bar.x + bar.w + 1 + TICK_LEN + 4 + label_w + 8 + L.lh_axis * 0.5, bar.y + bar.h / 2.0,
                       L.px_axis, COL_TEXT, 0, 0, 1, spec->colorbar_title, err);
    if (st == ME_OK)
        st = draw_axes_text(&d, f, &L, r, p, spec->title, spec->x_title, spec->y_title, &tx, xs, &ty, ys, err);
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

/* ================================ PNG ================================ */

typedef struct {
    unsigned char *buf;
    size_t size, cap;
    int failed;
} membuf;

static void membuf_write(void *ctx, void *data, int size) {
    membuf *m = ctx;
    if (m->failed || size <= 0) return;
    if (m->size + (size_t)size > m->cap) {
        size_t ncap = m->cap ? m->cap : 1 << 16;
        while (ncap < m->size + (size_t)size) ncap *= 2;
        unsigned char *nb = realloc(m->buf, ncap);
        if (!nb) {
            m->failed = 1;
            return;
        }
        m->buf = nb;
        m->cap = ncap;
    }
    memcpy(m->buf + m->size, data, (size_t)size);
    m->size += (size_t)size;
}

me_status me_canvas_encode_png(const me_canvas *c, unsigned char **png, size_t *size, me_error *err) {
    *png = NULL;
    *size = 0;
    membuf m = {NULL, 0, 0, 0};
    /* stb's PNG writer uses its default compression level and filter choice (both fixed), so the bytes
     * depend only on the pixels. */
    int ok = stbi_write_png_to_func(membuf_write, &m, c->w, c->h, 3, c->rgb, c->w * 3);
    if (!ok || m.failed) {
        free(m.buf);
        return me_error_set(err, ME_ERR_NOMEM, "plot: PNG encoding of a %dx%d image failed (out of memory)", c->w,
                            c->h);
    }
    *png = m.buf;
    *size = m.size;
    return ME_OK;
}

me_status me_canvas_write_png(const me_canvas *c, const char *path, me_error *err) {
    unsigned char *png;
    size_t size;
    me_status st = me_canvas_encode_png(c, &png, &size, err);
    if (st != ME_OK) return me_error_prefix(err, "%s", path);
    st = me_file_write_atomic(path, png, size, err); /* temp file, fsync, rename */
    free(png);
    return st;
}
