/* PNG output of a canvas through stb_image_write. */
#include "minienc/plot.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image_write.h>

#include "file.h"

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

/* stb's encoder settings are process globals: set once, before any chart is encoded (charts are
 * encoded in parallel). Its deflate searches hash chains as deep as the level and at least 5 deep, and
 * by default tries all five row filters per row: on a run's nine charts, level 5 without filters took
 * a third of the time of the default (level 8, adaptive filters) for 9% larger files. Chart pixels
 * are mostly flat colour, which deflate alone compresses well. */
static void png_settings(void) {
    stbi_write_png_compression_level = 5;
    stbi_write_force_png_filter = 0; /* PNG filter type 0: none */
}

me_status me_canvas_encode_png(const me_canvas *c, unsigned char **png, size_t *size, me_error *err) {
    *png = NULL;
    *size = 0;
    membuf m = {NULL, 0, 0, 0};
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, png_settings);
    /* the settings are fixed, so the bytes depend only on the pixels */
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
