/* Chart text: TrueType fonts through stb_truetype, measured and drawn as anti-aliased alpha masks. */
#include "plot_draw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_truetype.h>

#include "file.h"

#ifndef MINIENC_FONT_PATH
#define MINIENC_FONT_PATH "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#endif

const char *me_font_default_path(void) { return MINIENC_FONT_PATH; }

me_status me_font_load(me_font *f, const char *path, me_error *err) {
    f->ttf = NULL;
    f->info = NULL;
    if (!path) return me_error_set(err, ME_ERR_USAGE, "font: no path given, expected a TrueType font file");
    char *text;
    size_t size = 0;
    me_status st = me_file_read_all(path, "a TrueType font", &text, &size, err);
    if (st != ME_OK) return st;
    unsigned char *buf = (unsigned char *)text;
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
        return me_error_set(err, ME_ERR_FORMAT, "%s: not a TrueType font", path);
    }
    f->ttf = buf;
    f->info = info;
    return ME_OK;
}

void me_font_free(me_font *f) {
    if (!f) return;
    free(f->info);
    free(f->ttf);
    f->ttf = NULL;
    f->info = NULL;
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
    if (!text || !f->info) return 0.0;
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

me_status plot_draw_text(plot_dc *d, const me_font *f, double x, double y, double px, me_rgb col, int halign,
                         int valign, int vertical, const char *text, me_error *err) {
    if (!plot_nonempty(text)) return ME_OK;
    text_mask m;
    me_status st = text_render(f, px, text, &m, err);
    if (st != ME_OK) return st;
    if (!vertical) {
        double ax = halign == ME_TEXT_CENTER ? m.width / 2 : halign == ME_TEXT_RIGHT ? m.width : 0.0;
        double ay = valign == ME_TEXT_TOP ? m.base - m.cap : valign == ME_TEXT_MIDDLE ? m.base - m.cap / 2 : m.base;
        int ox = (int)floor(x - 1.0 - ax + 0.5), oy = (int)floor(y - ay + 0.5);
        for (int j = 0; j < m.h; j++)
            for (int i = 0; i < m.w; i++)
                if (m.a[(size_t)j * m.w + i]) plot_blend(d, ox + i, oy + j, col, m.a[(size_t)j * m.w + i] / 255.0);
    } else {
        /* Rotated 90 degrees counter-clockwise: mask (i, j) goes to (ox + j, oy + w - 1 - i). */
        int ox = (int)floor(x - (m.base - m.cap / 2) + 0.5);
        int oy = (int)floor(y - (m.w - 2 - m.width / 2) + 0.5);
        for (int j = 0; j < m.h; j++)
            for (int i = 0; i < m.w; i++)
                if (m.a[(size_t)j * m.w + i])
                    plot_blend(d, ox + j, oy + m.w - 1 - i, col, m.a[(size_t)j * m.w + i] / 255.0);
    }
    free(m.a);
    return ME_OK;
}

me_status me_canvas_text(me_canvas *c, const me_font *f, double x, double y, double px, me_rgb color, int halign,
                         int valign, int vertical, const char *text, me_error *err) {
    if (!f->info) return me_error_set(err, ME_ERR_USAGE, "plot: text: no font loaded, expected one from me_font_load");
    plot_dc d = {c, me_canvas_rect(c)};
    return plot_draw_text(&d, f, x, y, px, color, halign, valign, vertical, text, err);
}
