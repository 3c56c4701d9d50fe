/* Tests for the chart renderer: PNGs decode to the right size, data lands at the pixels the axis
 * mapping predicts (computed here from the reported plot rectangle), text is drawn, the heatmap colours
 * cells correctly, output is deterministic, and a missing or invalid font file is refused.
 * Set MINIENC_KEEP_PLOTS=DIR to keep the PNGs for viewing. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stb/stb_image.h>

#include "minienc/plot.h"

static const me_rgb SPIKE_COLOR = {214, 39, 40};

typedef struct {
    char dir[512];
    int keep;
    me_font font;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    fx->keep = me_make_output_dir(fx->dir, sizeof fx->dir);
    me_error err = {0};
    if (me_font_load(&fx->font, me_font_default_path(), &err) != ME_OK) {
        print_error("%s (the charts need the package %s)\n", err.msg, ME_FONT_PACKAGE);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    if (!fx->keep) me_remove_tree(fx->dir);
    me_font_free(&fx->font);
    free(fx);
    return 0;
}

static const unsigned char *px_at(const me_canvas *c, int x, int y) { return c->rgb + ((size_t)y * c->w + x) * 3; }

static int near_color(const unsigned char *p, me_rgb c, int tol) {
    return abs(p[0] - c.r) <= tol && abs(p[1] - c.g) <= tol && abs(p[2] - c.b) <= tol;
}

/* Pixels in [x0, x1) x [y0, y1) (clipped) within tol of colour c, not counting rectangle skip. */
static int count_color_skip(const me_canvas *c, int x0, int y0, int x1, int y1, me_rgb col, int tol, me_rect skip) {
    int n = 0;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > c->w) x1 = c->w;
    if (y1 > c->h) y1 = c->h;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            if (x >= skip.x && x < skip.x + skip.w && y >= skip.y && y < skip.y + skip.h) continue;
            n += near_color(px_at(c, x, y), col, tol);
        }
    return n;
}

static int count_color(const me_canvas *c, int x0, int y0, int x1, int y1, me_rgb col, int tol) {
    return count_color_skip(c, x0, y0, x1, y1, col, tol, (me_rect){0, 0, 0, 0});
}

/* Dark (text-coloured) pixels in a region. */
static int count_dark(const me_canvas *c, int x0, int y0, int x1, int y1) {
    return count_color(c, x0, y0, x1, y1, (me_rgb){34, 34, 34}, 60);
}

/* The chart's documented axis mapping, written out independently of the library. */
static double expect_px(const me_plot_area *a, double v) {
    return a->plot.x + 0.5 + (v - a->x_min) / (a->x_max - a->x_min) * (a->plot.w - 1);
}
static double expect_py(const me_plot_area *a, double v) {
    return a->plot.y + 0.5 + (a->y_max - v) / (a->y_max - a->y_min) * (a->plot.h - 1);
}

/* A series of n points over steps 0..10*(n-1): 1 + a gentle wave, with a spike of height 3 at index
 * spike (or none when spike < 0). Fills x, y, lo, hi. */
static void make_series(size_t n, long spike, double *x, double *y, double *lo, double *hi) {
    for (size_t i = 0; i < n; i++) {
        x[i] = 10.0 * (double)i;
        y[i] = 1.0 + 0.05 * sin((double)i * 0.05);
        lo[i] = y[i] - 0.03;
        hi[i] = y[i] + 0.03;
    }
    if (spike >= 0) y[spike] = 3.0;
}

static me_status render_line(me_canvas *cv, const me_font *f, size_t n, long spike, const char *title,
                             me_plot_area *area) {
    double *x = malloc(5 * n * sizeof(double));
    assert_non_null(x);
    double *y = x + n, *lo = y + n, *hi = lo + n, *mid = hi + n;
    make_series(n, spike, x, y, lo, hi);
    /* The second series sits under the first (never reaching the spike's level) and exercises bands. */
    for (size_t i = 0; i < n; i++) lo[i] -= 0.2, hi[i] -= 0.2, mid[i] = (lo[i] + hi[i]) / 2;
    me_line_series s[2] = {{.label = "gamma mean", .color = SPIKE_COLOR, .x = x, .y = y, .n = n},
                           {.label = "other (mean ± std)", .color = {31, 119, 180}, .x = x, .y = mid, .n = n,
                            .band_lo = lo, .band_hi = hi}};
    me_line_chart spec = {.title = title, .x_title = "training step", .y_title = "LayerNorm γ",
                          .series = s, .n_series = 2};
    me_error err = {0};
    me_status st = me_chart_line(cv, f, me_canvas_rect(cv), &spec, area, &err);
    if (st != ME_OK) print_error("%s\n", err.msg);
    free(x);
    return st;
}

static void line_chart_png_should_decode_to_the_canvas_size(void **state) {
    fixture *fx = *state;
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, NULL), ME_OK);
    assert_int_equal(render_line(&cv, &fx->font, 10, -1, "Ten points", NULL), ME_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/line10.png", fx->dir);
    me_error err = {0};
    assert_int_equal(me_canvas_write_png(&cv, path, &err), ME_OK);
    int w, h, comp;
    unsigned char *img = stbi_load(path, &w, &h, &comp, 3);
    assert_non_null(img);
    assert_int_equal(w, ME_PLOT_DEFAULT_W);
    assert_int_equal(h, ME_PLOT_DEFAULT_H);
    /* The decoded pixels are the canvas pixels. */
    assert_memory_equal(img, cv.rgb, (size_t)w * h * 3);
    stbi_image_free(img);
    me_canvas_free(&cv);
}

/* Series-coloured pixels above the level y = 2 must lie in the spike's columns and nowhere else. */
static void check_spike(const me_canvas *cv, const me_plot_area *a, double spike_x, double slack) {
    double sx = expect_px(a, spike_x);
    int level = (int)floor(expect_py(a, 2.0));
    int top = (int)floor(expect_py(a, 3.0)) - 3;
    int inside = count_color(cv, (int)floor(sx - slack), top, (int)ceil(sx + slack) + 1, level, SPIKE_COLOR, 40);
    /* The legend's sample line has the series colour too: leave the legend box out. */
    int outside =
        count_color_skip(cv, a->plot.x, a->plot.y, (int)floor(sx - slack), level, SPIKE_COLOR, 40, a->legend) +
        count_color_skip(cv, (int)ceil(sx + slack) + 1, a->plot.y, a->plot.x + a->plot.w, level, SPIKE_COLOR, 40,
                         a->legend);
    if (inside < 3 || outside != 0)
        print_error("spike at x=%.1f: %d coloured pixels inside, %d outside\n", sx, inside, outside);
    assert_true(inside >= 3);
    assert_int_equal(outside, 0);
    /* The spike reaches its peak row. */
    int peak = (int)floor(expect_py(a, 3.0));
    assert_true(count_color(cv, (int)floor(sx - 3), peak - 2, (int)ceil(sx + 3) + 1, peak + 3, SPIKE_COLOR, 40) > 0);
}

static void line_chart_should_draw_a_planted_spike_in_its_pixel_column(void **state) {
    fixture *fx = *state;
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, NULL), ME_OK);
    me_plot_area a;
    assert_int_equal(render_line(&cv, &fx->font, 200, 120, "Spike", &a), ME_OK);
    /* Neighbouring points are one step (plot.w / 199 px) away; the sloped sides stay within about half
     * of that above y = 2, plus the 2 px line. */
    double slack = 0.5 * (a.plot.w - 1) / 199.0 + 3.0;
    check_spike(&cv, &a, 1200.0, slack);
    /* And the test can fail: without the spike nothing is above the level. */
    me_canvas flat;
    assert_int_equal(me_canvas_init(&flat, ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, NULL), ME_OK);
    me_plot_area b;
    assert_int_equal(render_line(&flat, &fx->font, 200, -1, "Flat", &b), ME_OK);
    int level = (int)floor(expect_py(&b, 1.3));
    assert_int_equal(
        count_color_skip(&flat, b.plot.x, b.plot.y, b.plot.x + b.plot.w, level, SPIKE_COLOR, 40, b.legend), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/spike200.png", fx->dir);
    assert_int_equal(me_canvas_write_png(&cv, path, NULL), ME_OK);
    me_canvas_free(&flat);
    me_canvas_free(&cv);
}

static void spike_should_survive_downsampling_of_10000_points(void **state) {
    fixture *fx = *state;
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, NULL), ME_OK);
    me_plot_area a;
    assert_int_equal(render_line(&cv, &fx->font, 10000, 6543, "10,000 points", &a), ME_OK);
    assert_true(a.plot.w < 10000); /* really more points than columns */
    check_spike(&cv, &a, 65430.0, 3.0);
    char path[600];
    snprintf(path, sizeof path, "%s/line10000.png", fx->dir);
    assert_int_equal(me_canvas_write_png(&cv, path, NULL), ME_OK);
    me_canvas_free(&cv);
}

static void text_should_be_drawn_in_the_title_and_tick_label_regions(void **state) {
    fixture *fx = *state;
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, NULL), ME_OK);
    me_plot_area a;
    assert_int_equal(render_line(&cv, &fx->font, 50, -1, "A title", &a), ME_OK);
    int cx = a.plot.x + a.plot.w / 2;
    assert_true(count_dark(&cv, cx - 100, 0, cx + 100, a.plot.y - 2) > 20);          /* title */
    assert_true(count_dark(&cv, 0, a.plot.y, a.plot.x - 8, a.plot.y + a.plot.h) > 20); /* y ticks, title */
    assert_true(count_dark(&cv, a.plot.x, a.plot.y + a.plot.h + 8, a.plot.x + a.plot.w, cv.h) > 20); /* x */
    /* Without a title that region is blank. */
    me_canvas_fill(&cv, (me_rgb){255, 255, 255});
    assert_int_equal(render_line(&cv, &fx->font, 50, -1, NULL, &a), ME_OK);
    assert_int_equal(count_dark(&cv, cx - 100, 0, cx + 100, a.plot.y - 2), 0);
    me_canvas_free(&cv);
}

static int lightness(const unsigned char *p) { return p[0] + p[1] + p[2]; }

/* One series: mean 1, band 0.9..1.1, envelope 0.7..1.3, on a fixed y range 0.5..1.5. */
static void envelope_should_be_lighter_than_the_band_and_the_band_lighter_than_the_line(void **state) {
    fixture *fx = *state;
    enum { N = 100 };
    double x[N], y[N], blo[N], bhi[N], elo[N], ehi[N];
    for (int i = 0; i < N; i++) {
        x[i] = i;
        y[i] = 1.0;
        blo[i] = 0.9, bhi[i] = 1.1, elo[i] = 0.7, ehi[i] = 1.3;
    }
    me_line_series s = {.label = "norm1.weight", .color = me_plot_palette(0), .x = x, .y = y, .n = N,
                        .band_lo = blo, .band_hi = bhi, .env_lo = elo, .env_hi = ehi};
    me_line_chart spec = {.title = "bands", .series = &s, .n_series = 1, .fix_y = 1, .y_min = 0.5, .y_max = 1.5,
                          .legend = ME_LEGEND_NONE};
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, NULL), ME_OK);
    me_plot_area a;
    assert_int_equal(me_chart_line(&cv, &fx->font, me_canvas_rect(&cv), &spec, &a, NULL), ME_OK);
    assert_int_equal(a.legend.w, 0);
    int col = (int)expect_px(&a, 37.3); /* off the vertical grid lines */
    int l_line = lightness(px_at(&cv, col, (int)expect_py(&a, 1.0)));
    int l_band = lightness(px_at(&cv, col, (int)expect_py(&a, 1.03)));
    int l_env = lightness(px_at(&cv, col, (int)expect_py(&a, 1.17)));
    int l_out = lightness(px_at(&cv, col, (int)expect_py(&a, 1.37)));
    if (!(l_line < l_band && l_band < l_env && l_env < l_out && l_out == 3 * 255))
        print_error("lightness line %d band %d envelope %d outside %d\n", l_line, l_band, l_env, l_out);
    assert_true(l_line < l_band && l_band < l_env && l_env < l_out);
    assert_int_equal(l_out, 3 * 255);
    me_canvas_free(&cv);
}

/* The report's picture: γ of three LayerNorms over 2,000 snapshots (mean, ± std, min/max) beside the
 * per-dimension heatmap of one of them. Checked on the decoded PNG: each mean line is drawn in its own
 * colour where the axis mapping puts it (and nowhere far from it in that column), and every sampled
 * heatmap pixel has exactly the colour of the cells it averages, per the mapping plot.h documents. */
static void gamma_history_side_by_side_should_put_lines_and_cells_where_the_mapping_says(void **state) {
    fixture *fx = *state;
    enum { N = 2000, D = 64, L = 3 };
    static double x[N], m[L][N], blo[L][N], bhi[L][N], elo[L][N], ehi[L][N];
    static float heat[D * N];
    me_rng rng;
    me_rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) x[i] = 5.0 * i;
    for (int d = 0; d < D; d++) {
        double drift = (me_rng_uniform(&rng) - 0.5) * 0.4, g = 1.0;
        for (int i = 0; i < N; i++) {
            g += drift / N + (me_rng_uniform(&rng) - 0.5) * 0.004;
            heat[d * N + i] = (float)g;
        }
    }
    me_line_series s[L];
    const char *names[L] = {"layers.0.norm1", "layers.0.norm2", "layers.1.norm1"};
    for (int l = 0; l < L; l++) {
        for (int i = 0; i < N; i++) {
            double t = (double)i / N, sd = 0.02 + 0.08 * t * (l + 1) / L;
            m[l][i] = 1.0 + (l - 1) * 0.05 * t + 0.01 * sin(i * 0.01 * (l + 1));
            blo[l][i] = m[l][i] - sd, bhi[l][i] = m[l][i] + sd;
            elo[l][i] = m[l][i] - 2.5 * sd, ehi[l][i] = m[l][i] + 2.2 * sd;
        }
        s[l] = (me_line_series){.label = names[l], .color = me_plot_palette(l), .x = x, .y = m[l], .n = N,
                                .band_lo = blo[l], .band_hi = bhi[l], .env_lo = elo[l], .env_hi = ehi[l]};
    }
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, 2 * ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, NULL), ME_OK);
    me_line_chart lc = {.title = "LayerNorm γ: mean ± std, min/max", .x_title = "training step", .y_title = "γ",
                        .series = s, .n_series = L};
    me_heatmap_spec hs = {.title = "layers.0.norm1.weight", .x_title = "training step", .y_title = "dimension",
                          .colorbar_title = "γ", .values = heat, .rows = D, .cols = N, .steps = x, .center = 1.0};
    me_rect left = me_plot_grid_cell(me_canvas_rect(&cv), 1, 2, 0, 0);
    me_rect right = me_plot_grid_cell(me_canvas_rect(&cv), 1, 2, 0, 1);
    me_plot_area la, ha;
    me_error err = {0};
    assert_int_equal(me_chart_line(&cv, &fx->font, left, &lc, &la, &err), ME_OK);
    assert_int_equal(me_chart_heatmap(&cv, &fx->font, right, &hs, &ha, &err), ME_OK);
    assert_true(la.plot.x >= left.x && la.plot.x + la.plot.w <= left.x + left.w);
    assert_true(ha.plot.x >= right.x && ha.plot.x + ha.plot.w <= right.x + right.w);
    char path[600];
    snprintf(path, sizeof path, "%s/gamma_history.png", fx->dir);
    assert_int_equal(me_canvas_write_png(&cv, path, &err), ME_OK);
    me_canvas_free(&cv);

    int w, h, comp;
    unsigned char *img = stbi_load(path, &w, &h, &comp, 3);
    assert_non_null(img);
    assert_int_equal(w, 2 * ME_PLOT_DEFAULT_W);
    assert_int_equal(h, ME_PLOT_DEFAULT_H);
    const me_canvas png = {w, h, img};

    /* Lines, over the second half of training, where the three means drift apart: at the column of
     * x[i] a pixel within 2 rows of the mean's row has the series' colour (the 2 px line covers one
     * fully), and no pixel of that colour is 8 or more rows away. Samples where another mean comes
     * within 16 rows, or under the legend, are skipped. */
    int checked = 0;
    for (int i = N / 2; i < N; i += 50)
        for (int l = 0; l < L; l++) {
            int col = (int)floor(expect_px(&la, x[i]));
            double yc = expect_py(&la, m[l][i]);
            int crowded = col >= la.legend.x - 4 && col < la.legend.x + la.legend.w + 4;
            for (int o = 0; o < L; o++)
                if (o != l && fabs(expect_py(&la, m[o][i]) - yc) < 16) crowded = 1;
            if (crowded) continue;
            me_rgb c = me_plot_palette(l);
            int yi = (int)floor(yc);
            int near = count_color(&png, col, yi - 2, col + 1, yi + 3, c, 2);
            int far = count_color(&png, col, la.plot.y, col + 1, yi - 8, c, 2) +
                      count_color(&png, col, yi + 9, col + 1, la.plot.y + la.plot.h, c, 2);
            if (near < 1 || far != 0)
                print_error("series %d at step %g: %d pixels of its colour near row %.1f, %d far from it\n", l, x[i],
                            near, yc, far);
            assert_true(near >= 1);
            assert_int_equal(far, 0);
            checked++;
        }
    assert_true(checked >= 15);

    /* Heatmap cells: pixel column i averages snapshots [i * N / w, (i + 1) * N / w) (more snapshots than
     * pixels), pixel row j shows dimension floor((j + 0.5) * D / h) (fewer dimensions than pixels), and
     * the colour scale saturates at 1 ± max |γ − 1|. */
    assert_true(ha.plot.w < N && ha.plot.h > D);
    double range = 0;
    for (int k = 0; k < D * N; k++) range = fmax(range, fabs(heat[k] - 1.0));
    int cells = 0;
    for (int j = 0; j < ha.plot.h; j += 7)
        for (int i = 0; i < ha.plot.w; i += 7) {
            int d = (int)(((long)2 * j + 1) * D / (2L * ha.plot.h));
            int a = (int)((long)i * N / ha.plot.w), b = (int)((long)(i + 1) * N / ha.plot.w);
            double sum = 0;
            for (int k = a; k < b; k++) sum += heat[d * N + k];
            me_rgb want = me_heatmap_color(sum / (b - a), 1.0, range);
            const unsigned char *got = px_at(&png, ha.plot.x + i, ha.plot.y + j);
            if (!near_color(got, want, 0))
                fail_msg("heatmap pixel (%d, %d): (%d, %d, %d), expected (%d, %d, %d) for dim %d, snapshots %d..%d",
                         i, j, got[0], got[1], got[2], want.r, want.g, want.b, d, a, b - 1);
            cells++;
        }
    assert_true(cells > 1000);
    stbi_image_free(img);
}

/* Points 0..9 and 22..30 are lines, 20 stands alone between NaNs: nothing is drawn across the gaps
 * and the lone point gets a dot. */
static void nan_should_break_the_line_and_a_lone_point_should_show_as_a_dot(void **state) {
    fixture *fx = *state;
    enum { N = 31 };
    double x[N], y[N];
    for (int i = 0; i < N; i++) {
        x[i] = i;
        y[i] = (i >= 10 && i < 20) || i == 21 ? NAN : 1.0 + 0.01 * i;
    }
    me_line_series s = {.color = SPIKE_COLOR, .x = x, .y = y, .n = N};
    me_line_chart spec = {.series = &s, .n_series = 1};
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, NULL), ME_OK);
    me_plot_area a;
    assert_int_equal(me_chart_line(&cv, &fx->font, me_canvas_rect(&cv), &spec, &a, NULL), ME_OK);
    assert_int_equal(a.legend.w, 0); /* no labelled series, no legend */
    int top = a.plot.y, bot = a.plot.y + a.plot.h;
    int gap1 = count_color(&cv, (int)expect_px(&a, 9) + 4, top, (int)expect_px(&a, 20) - 6, bot, SPIKE_COLOR, 40);
    int gap2 = count_color(&cv, (int)expect_px(&a, 20) + 6, top, (int)expect_px(&a, 22) - 4, bot, SPIKE_COLOR, 40);
    assert_int_equal(gap1, 0);
    assert_int_equal(gap2, 0);
    int lx = (int)expect_px(&a, 20), ly = (int)expect_py(&a, 1.2);
    assert_true(count_color(&cv, lx - 3, ly - 3, lx + 4, ly + 4, SPIKE_COLOR, 40) >= 9);
    /* The line segments themselves are there. */
    assert_true(count_color(&cv, (int)expect_px(&a, 2), top, (int)expect_px(&a, 7), bot, SPIKE_COLOR, 40) > 50);
    me_canvas_free(&cv);
}

/* Without its font file nothing is drawn: the load fails naming the file, the font stays unloaded, and
 * charts and text refuse it instead of drawing without text. */
/* The documented logarithmic mapping, written out independently of the library. */
static double expect_py_log(const me_plot_area *a, double v) {
    return a->plot.y + 0.5 + (log10(a->y_max) - log10(v)) / (log10(a->y_max) - log10(a->y_min)) * (a->plot.h - 1);
}

static void log_scale_should_place_each_decade_at_equal_heights(void **state) {
    fixture *fx = *state;
    enum { N = 600 };
    double x[N], y[N];
    for (int i = 0; i < N; i++) {
        x[i] = i;
        y[i] = 2.0 * pow(10.0, -4.0 * i / (N - 1)); /* 2 down to 2e-4: four decades in a straight line */
    }
    y[N / 2] = -1.0; /* not drawable on a log axis: breaks the line, does not stretch the range */
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, NULL), ME_OK);
    me_line_series s = {.label = "loss", .color = SPIKE_COLOR, .x = x, .y = y, .n = N};
    me_line_chart spec = {.title = "loss (log scale)", .x_title = "step", .y_title = "loss", .series = &s,
                          .n_series = 1, .legend = ME_LEGEND_NONE, .log_y = 1};
    me_plot_area a;
    me_error err = {0};
    assert_int_equal(me_chart_line(&cv, &fx->font, me_canvas_rect(&cv), &spec, &a, &err), ME_OK);
    assert_true(a.y_min > 0 && a.y_min < 2e-4 && a.y_max > 2.0 && a.y_max < 4.0);
    /* on a log axis this line is straight: every tenth point sits on its predicted row */
    for (int i = 5; i < N - 5; i += 10) {
        if (abs(i - N / 2) < 3) continue;
        int col = (int)floor(expect_px(&a, x[i]));
        int row = (int)floor(expect_py_log(&a, y[i]));
        int near = count_color(&cv, col, row - 2, col + 1, row + 3, SPIKE_COLOR, 2);
        int far = count_color(&cv, col, a.plot.y, col + 1, row - 8, SPIKE_COLOR, 2) +
                  count_color(&cv, col, row + 9, col + 1, a.plot.y + a.plot.h, SPIKE_COLOR, 2);
        if (near < 1 || far != 0) fail_msg("point %d (%g): %d pixels near row %d, %d far", i, y[i], near, row, far);
    }
    /* 1e-3 and 1e-2 are one decade apart, as 1e-1 and 1 are: the same pixel distance */
    assert_true(fabs((expect_py_log(&a, 1e-3) - expect_py_log(&a, 1e-2)) -
                     (expect_py_log(&a, 0.1) - expect_py_log(&a, 1.0))) < 1e-9);
    if (fx->keep) {
        char path[600];
        snprintf(path, sizeof path, "%s/log_scale.png", fx->dir);
        assert_int_equal(me_canvas_write_png(&cv, path, &err), ME_OK);
    }
    /* a fixed log range must be positive */
    spec.fix_y = 1;
    spec.y_min = 0;
    spec.y_max = 1;
    assert_int_equal(me_chart_line(&cv, &fx->font, me_canvas_rect(&cv), &spec, NULL, &err), ME_ERR_CONFIG);
    me_canvas_free(&cv);
}

static void legend_should_go_where_it_covers_no_drawn_line(void **state) {
    fixture *fx = *state;
    /* a flat line along the bottom covers both lower corners and the bottom middle, a V high at both
     * ends both upper corners: the top middle is the first place tried that hides no line (a legend kept
     * to the corners would hide one). Few points per series: the segments between them are what counts. */
    double x2[2] = {0, 100}, low[2] = {0.0, 0.0};
    double xu[3] = {0, 50, 100}, u[3] = {10.0, 2.0, 10.0};
    me_line_series s[2] = {{.label = "flat", .color = SPIKE_COLOR, .x = x2, .y = low, .n = 2},
                           {.label = "V shaped", .color = {31, 119, 180}, .x = xu, .y = u, .n = 3}};
    me_line_chart spec = {.title = "legend placement", .series = s, .n_series = 2, .legend = ME_LEGEND_AUTO};
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, 900, 500, NULL), ME_OK);
    me_plot_area a;
    me_error err = {0};
    assert_int_equal(me_chart_line(&cv, &fx->font, me_canvas_rect(&cv), &spec, &a, &err), ME_OK);
    assert_true(a.legend.w > 0);
    double centre = a.legend.x + a.legend.w / 2.0;
    if (fabs(centre - (a.plot.x + a.plot.w / 2.0)) > 2 || a.legend.y > a.plot.y + 20)
        fail_msg("legend at (%d, %d) %dx%d, expected at the top middle of the plot (%d, %d) %dx%d", a.legend.x,
                 a.legend.y, a.legend.w, a.legend.h, a.plot.x, a.plot.y, a.plot.w, a.plot.h);
    /* and no pixel of either line inside it, outside its own colour swatches (x + 10 .. x + 36) */
    for (int k = 0; k < 2; k++) {
        int y0 = a.legend.y + 2, y1 = a.legend.y + a.legend.h - 2;
        int hidden = count_color(&cv, a.legend.x + 2, y0, a.legend.x + 8, y1, s[k].color, 2) +
                     count_color(&cv, a.legend.x + 40, y0, a.legend.x + a.legend.w - 2, y1, s[k].color, 2);
        assert_int_equal(hidden, 0);
    }
    me_canvas_free(&cv);
}

static void a_missing_or_invalid_font_file_should_be_refused(void **state) {
    fixture *fx = *state;
    me_font f;
    me_error err = {0};
    assert_int_equal(me_font_load(&f, "/nonexistent/minienc/font.ttf", &err), ME_ERR_NOFILE);
    assert_null(f.info);
    assert_non_null(strstr(err.msg, "/nonexistent/minienc/font.ttf"));
    assert_true(me_font_text_width(&f, 13, "0.95") == 0.0);
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, NULL), ME_OK);
    assert_int_equal(render_line(&cv, &f, 50, 20, "no font", NULL), ME_ERR_USAGE);
    float v[4] = {0, 1, 2, 3};
    me_heatmap_spec hs = {.values = v, .rows = 2, .cols = 2};
    assert_int_equal(me_chart_heatmap(&cv, &f, me_canvas_rect(&cv), &hs, NULL, &err), ME_ERR_USAGE);
    assert_non_null(strstr(err.msg, "no font loaded"));
    assert_int_equal(me_canvas_text(&cv, &f, 10, 10, 13, (me_rgb){0, 0, 0}, ME_TEXT_LEFT, ME_TEXT_TOP, 0, "x", &err),
                     ME_ERR_USAGE);
    /* Nothing was drawn: the canvas is still white. */
    for (size_t i = 0; i < (size_t)cv.w * cv.h * 3; i++)
        if (cv.rgb[i] != 255) fail_msg("byte %zu of the canvas is %d, expected untouched white", i, cv.rgb[i]);
    me_canvas_free(&cv);
    me_font_free(&f);
    /* A file that is not a font is refused too. */
    char path[600];
    snprintf(path, sizeof path, "%s/not_a_font.ttf", fx->dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs("definitely not a TrueType file", fp);
    fclose(fp);
    assert_int_equal(me_font_load(&f, path, NULL), ME_ERR_FORMAT);
    assert_null(f.info);
    me_font_free(&f);
}

/* 16 dimensions x 40 snapshots at the centre value 1, one hot cell (dim 5, snapshot 30) and one cold
 * cell (dim 11, snapshot 8). */
static void heatmap_should_place_a_hot_cell_in_red_and_the_centre_in_white(void **state) {
    fixture *fx = *state;
    enum { R = 16, C = 40 };
    float v[R * C];
    double steps[C];
    for (int i = 0; i < R * C; i++) v[i] = 1.0f;
    for (int c = 0; c < C; c++) steps[c] = 50.0 * c;
    v[5 * C + 30] = 1.5f;
    v[11 * C + 8] = 0.5f;
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, NULL), ME_OK);
    me_heatmap_spec spec = {.title = "LayerNorm γ per dimension", .x_title = "training step",
                            .y_title = "dimension", .colorbar_title = "γ", .values = v, .rows = R, .cols = C,
                            .steps = steps, .center = 1.0};
    me_plot_area a;
    me_error err = {0};
    assert_int_equal(me_chart_heatmap(&cv, &fx->font, me_canvas_rect(&cv), &spec, &a, &err), ME_OK);
    /* Centre of cell (d, s) by the documented nearest mapping. */
    int hx = a.plot.x + (int)((30 + 0.5) * a.plot.w / C), hy = a.plot.y + (int)((5 + 0.5) * a.plot.h / R);
    int kx = a.plot.x + (int)((8 + 0.5) * a.plot.w / C), ky = a.plot.y + (int)((11 + 0.5) * a.plot.h / R);
    int nx = a.plot.x + (int)((20 + 0.5) * a.plot.w / C), ny = a.plot.y + (int)((2 + 0.5) * a.plot.h / R);
    const unsigned char *hot = px_at(&cv, hx, hy), *cold = px_at(&cv, kx, ky), *mid = px_at(&cv, nx, ny);
    assert_true(hot[0] > 80 && hot[0] > hot[1] + 60 && hot[0] > hot[2] + 50);   /* red */
    assert_true(cold[2] > 80 && cold[2] > cold[0] + 60);                          /* blue */
    assert_true(mid[0] > 235 && mid[1] > 235 && mid[2] > 235);                    /* near-white */
    /* Only the hot cell is red: the row above it is white at the same column. */
    const unsigned char *above = px_at(&cv, hx, a.plot.y + (int)((4 + 0.5) * a.plot.h / R));
    assert_true(above[0] > 235 && above[1] > 235 && above[2] > 235);
    /* The colour map itself: centre white, above red, below blue, saturating at centre ± range. */
    me_rgb c0 = me_heatmap_color(1.0, 1.0, 0.5), hi = me_heatmap_color(2.0, 1.0, 0.5),
           lo = me_heatmap_color(-5.0, 1.0, 0.5);
    assert_true(c0.r > 240 && c0.g > 240 && c0.b > 240);
    assert_true(hi.r > hi.b + 50 && lo.b > lo.r + 50);
    assert_true(a.colorbar.w > 0 && a.colorbar.x > a.plot.x + a.plot.w);
    /* Text in the title and colour-bar label regions. */
    assert_true(count_dark(&cv, a.plot.x + a.plot.w / 2 - 100, 0, a.plot.x + a.plot.w / 2 + 100, a.plot.y - 2) > 20);
    assert_true(count_dark(&cv, a.colorbar.x + a.colorbar.w + 2, a.plot.y, cv.w, a.plot.y + a.plot.h) > 20);
    char path[600];
    snprintf(path, sizeof path, "%s/heatmap16x40.png", fx->dir);
    assert_int_equal(me_canvas_write_png(&cv, path, NULL), ME_OK);
    me_canvas_free(&cv);
}

static void heatmap_of_512_by_10000_should_average_columns(void **state) {
    fixture *fx = *state;
    enum { R = 512, C = 10000 };
    float *v = malloc(sizeof(float) * R * C);
    double *steps = malloc(sizeof(double) * C);
    assert_non_null(v);
    assert_non_null(steps);
    for (int c = 0; c < C; c++) steps[c] = 10.0 * c;
    /* β drifting away from 0 with a per-dimension sign; dims 100..109 strongly positive late. */
    for (int d = 0; d < R; d++)
        for (int c = 0; c < C; c++) {
            double t = (double)c / C;
            v[(size_t)d * C + c] = (float)(0.3 * t * sin(d * 0.37) + ((d >= 100 && d < 110 && c > C / 2) ? 0.6 : 0.0));
        }
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, NULL), ME_OK);
    me_heatmap_spec spec = {.title = "LayerNorm β (encoder.layers.0.norm1.bias)", .x_title = "training step",
                            .y_title = "dimension", .colorbar_title = "β", .values = v, .rows = R, .cols = C,
                            .steps = steps, .center = 0.0};
    me_plot_area a;
    assert_int_equal(me_chart_heatmap(&cv, &fx->font, me_canvas_rect(&cv), &spec, &a, NULL), ME_OK);
    assert_true(a.plot.w < C); /* columns averaged; 512 rows fit in the height and are repeated */
    /* Pixel column i averages columns [i*C/w, (i+1)*C/w); a pixel over dims 100..109 late in training
     * must be strongly red, early ones pale. */
    int row_px = (int)(105.0 * a.plot.h / R);
    const unsigned char *late = px_at(&cv, a.plot.x + a.plot.w - 5, a.plot.y + row_px);
    const unsigned char *early = px_at(&cv, a.plot.x + 2, a.plot.y + row_px);
    assert_true(late[0] > late[2] + 60);
    assert_true(early[0] > 220 && early[1] > 220 && early[2] > 220);
    char path[600];
    snprintf(path, sizeof path, "%s/heatmap512x10000.png", fx->dir);
    assert_int_equal(me_canvas_write_png(&cv, path, NULL), ME_OK);
    me_canvas_free(&cv);
    free(v);
    free(steps);
}

static void rendering_twice_should_give_identical_png_bytes(void **state) {
    fixture *fx = *state;
    unsigned char *png[2];
    size_t size[2];
    for (int k = 0; k < 2; k++) {
        me_canvas cv;
        assert_int_equal(me_canvas_init(&cv, ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, NULL), ME_OK);
        assert_int_equal(render_line(&cv, &fx->font, 300, 100, "Determinism", NULL), ME_OK);
        float v[64 * 30];
        for (int i = 0; i < 64 * 30; i++) v[i] = (float)sin(i * 0.1);
        me_heatmap_spec hs = {.title = "heat", .values = v, .rows = 64, .cols = 30, .center = 0.0};
        me_rect half = me_plot_grid_cell(me_canvas_rect(&cv), 1, 2, 0, 1);
        assert_int_equal(me_chart_heatmap(&cv, &fx->font, half, &hs, NULL, NULL), ME_OK);
        assert_int_equal(me_canvas_encode_png(&cv, &png[k], &size[k], NULL), ME_OK);
        me_canvas_free(&cv);
    }
    assert_int_equal(size[0], size[1]);
    assert_memory_equal(png[0], png[1], size[0]);
    /* PNG signature. */
    assert_memory_equal(png[0], "\x89PNG\r\n\x1a\n", 8);
    free(png[0]);
    free(png[1]);
}

static void panels_should_tile_the_canvas_without_overlap(void **state) {
    fixture *fx = *state;
    enum { N = 400 };
    double step[N], loss[N], acc_step[N / 20], acc[N / 20];
    for (int i = 0; i < N; i++) {
        step[i] = 5.0 * i;
        loss[i] = 2.3 * exp(-i / 80.0) + 0.25 + 0.05 * sin(i * 1.7);
    }
    for (int i = 0; i < N / 20; i++) {
        acc_step[i] = 100.0 * i;
        acc[i] = 0.95 - 0.85 * exp(-i / 4.0);
    }
    me_line_series ls = {.label = "train loss", .color = me_plot_palette(0), .x = step, .y = loss, .n = N};
    me_line_series as = {.label = "validation accuracy", .color = me_plot_palette(1), .x = acc_step, .y = acc,
                         .n = N / 20};
    me_line_chart top = {.title = "Training loss", .y_title = "loss", .series = &ls, .n_series = 1};
    me_line_chart bot = {.title = "Validation accuracy", .x_title = "training step", .y_title = "accuracy",
                         .series = &as, .n_series = 1, .fix_y = 1, .y_min = 0.0, .y_max = 1.0};
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, ME_PLOT_DEFAULT_W, ME_PLOT_DEFAULT_H, NULL), ME_OK);
    me_rect r0 = me_plot_grid_cell(me_canvas_rect(&cv), 2, 1, 0, 0), r1 = me_plot_grid_cell(me_canvas_rect(&cv), 2, 1, 1, 0);
    assert_int_equal(r0.h + r1.h, cv.h);
    assert_int_equal(r1.y, r0.y + r0.h);
    me_plot_area a0, a1;
    assert_int_equal(me_chart_line(&cv, &fx->font, r0, &top, &a0, NULL), ME_OK);
    assert_int_equal(me_chart_line(&cv, &fx->font, r1, &bot, &a1, NULL), ME_OK);
    assert_true(a0.plot.y >= r0.y && a0.plot.y + a0.plot.h <= r0.y + r0.h);
    assert_true(a1.plot.y >= r1.y && a1.plot.y + a1.plot.h <= r1.y + r1.h);
    assert_true(a1.y_min == 0.0 && a1.y_max == 1.0); /* fixed range honoured */
    char path[600];
    snprintf(path, sizeof path, "%s/panels.png", fx->dir);
    assert_int_equal(me_canvas_write_png(&cv, path, NULL), ME_OK);
    me_canvas_free(&cv);
}

static void bad_specs_should_be_refused_with_config_errors(void **state) {
    fixture *fx = *state;
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, 400, 300, NULL), ME_OK);
    double y[3] = {1, 2, 3};
    me_line_series s = {.label = "x", .y = NULL, .n = 3};
    me_line_chart spec = {.series = &s, .n_series = 1};
    me_error err = {0};
    assert_int_equal(me_chart_line(&cv, &fx->font, me_canvas_rect(&cv), &spec, NULL, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "y is NULL"));
    s.y = y;
    s.band_lo = y; /* band_hi missing */
    assert_int_equal(me_chart_line(&cv, &fx->font, me_canvas_rect(&cv), &spec, NULL, &err), ME_ERR_CONFIG);
    s.band_lo = NULL;
    me_rect tiny = {0, 0, 100, 60};
    assert_int_equal(me_chart_line(&cv, &fx->font, tiny, &spec, NULL, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "too small"));
    spec.fix_y = 1; /* y_min == y_max == 0 */
    assert_int_equal(me_chart_line(&cv, &fx->font, me_canvas_rect(&cv), &spec, NULL, &err), ME_ERR_CONFIG);
    me_heatmap_spec hs = {.values = NULL, .rows = 4, .cols = 4};
    assert_int_equal(me_chart_heatmap(&cv, &fx->font, me_canvas_rect(&cv), &hs, NULL, &err), ME_ERR_CONFIG);
    float v[4] = {0, 1, 2, 3};
    double steps[2] = {10, 5};
    me_heatmap_spec hs2 = {.values = v, .rows = 2, .cols = 2, .steps = steps};
    assert_int_equal(me_chart_heatmap(&cv, &fx->font, me_canvas_rect(&cv), &hs2, NULL, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "ascending"));
    me_canvas none;
    assert_int_equal(me_canvas_init(&none, 0, 10, &err), ME_ERR_CONFIG);
    assert_null(none.rgb);
    me_canvas_free(&cv);
}

static void writing_a_png_should_leave_no_temporary_file(void **state) {
    fixture *fx = *state;
    char sub[600], path[700], cmd[800], out[256];
    snprintf(sub, sizeof sub, "%s/atomic", fx->dir);
    mkdir(sub, 0755);
    snprintf(path, sizeof path, "%s/chart.png", sub);
    me_canvas cv;
    assert_int_equal(me_canvas_init(&cv, 300, 200, NULL), ME_OK);
    assert_int_equal(me_canvas_write_png(&cv, path, NULL), ME_OK);
    assert_int_equal(me_canvas_write_png(&cv, path, NULL), ME_OK); /* overwrite */
    snprintf(cmd, sizeof cmd, "ls -A '%s'", sub);
    assert_int_equal(me_run_capture(cmd, out, sizeof out), 0);
    assert_string_equal(out, "chart.png\n");
    me_error err = {0};
    assert_int_equal(me_canvas_write_png(&cv, "/nonexistent-dir/x.png", &err), ME_ERR_IO);
    me_canvas_free(&cv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(line_chart_png_should_decode_to_the_canvas_size),
        cmocka_unit_test(line_chart_should_draw_a_planted_spike_in_its_pixel_column),
        cmocka_unit_test(spike_should_survive_downsampling_of_10000_points),
        cmocka_unit_test(text_should_be_drawn_in_the_title_and_tick_label_regions),
        cmocka_unit_test(envelope_should_be_lighter_than_the_band_and_the_band_lighter_than_the_line),
        cmocka_unit_test(gamma_history_side_by_side_should_put_lines_and_cells_where_the_mapping_says),
        cmocka_unit_test(nan_should_break_the_line_and_a_lone_point_should_show_as_a_dot),
        cmocka_unit_test(log_scale_should_place_each_decade_at_equal_heights),
        cmocka_unit_test(legend_should_go_where_it_covers_no_drawn_line),
        cmocka_unit_test(a_missing_or_invalid_font_file_should_be_refused),
        cmocka_unit_test(heatmap_should_place_a_hot_cell_in_red_and_the_centre_in_white),
        cmocka_unit_test(heatmap_of_512_by_10000_should_average_columns),
        cmocka_unit_test(rendering_twice_should_give_identical_png_bytes),
        cmocka_unit_test(panels_should_tile_the_canvas_without_overlap),
        cmocka_unit_test(bad_specs_should_be_refused_with_config_errors),
        cmocka_unit_test(writing_a_png_should_leave_no_temporary_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
