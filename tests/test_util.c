#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

double me_check_close(const char *what, const float *got, const float *want, size_t n, double rtol) {
    double scale = 0.0, worst = -1.0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double a = fabs((double)want[i]);
        if (a > scale) scale = a;
    }
    if (scale < 1e-30) scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= worst)) { /* also catches NaN */
            worst = d;
            worst_i = i;
            if (isnan(d)) break;
        }
    }
    double rel = worst / scale;
    if (!(rel <= rtol)) {
        print_error("%s: relative error %.3g > %.3g at index %zu of %zu: got %.9g want %.9g (scale %.6g)\n",
                    what, rel, rtol, worst_i, n, (double)got[worst_i], (double)want[worst_i], scale);
        fail();
    }
    return rel;
}

double me_fd_check_direction(me_loss_fn loss, void *ctx, const char *what, float *w, const float *g, size_t n,
                             double eps, double rtol, me_rng *rng) {
    float *u = malloc(n * sizeof *u), *saved = malloc(n * sizeof *saved);
    assert_non_null(u);
    assert_non_null(saved);
    me_fill_uniform(u, n, -1.0f, 1.0f, rng);
    memcpy(saved, w, n * sizeof *w);
    double analytic = 0, gnorm = 0;
    for (size_t i = 0; i < n; i++) {
        analytic += (double)g[i] * u[i];
        gnorm += fabs((double)g[i] * u[i]);
    }
    for (size_t i = 0; i < n; i++) w[i] = (float)(saved[i] + eps * u[i]);
    double lp = loss(ctx);
    for (size_t i = 0; i < n; i++) w[i] = (float)(saved[i] - eps * u[i]);
    double lm = loss(ctx);
    memcpy(w, saved, n * sizeof *w);
    double numeric = (lp - lm) / (2 * eps);
    double rel = fabs(numeric - analytic) / (gnorm > 1e-6 ? gnorm : 1e-6);
    if (!(rel <= rtol)) {
        print_error("%s: finite difference %.8g vs analytic %.8g (relative %.3g > %.3g)\n", what, numeric, analytic,
                    rel, rtol);
        fail();
    }
    free(u);
    free(saved);
    return rel;
}

void me_fill_uniform(float *x, size_t n, float lo, float hi, me_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * me_rng_uniform(r);
}

void me_make_temp_dir(char *buf, size_t cap) {
    char tmpl[] = "/tmp/minienc-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    snprintf(buf, cap, "%s", d);
}

int me_make_output_dir(char *buf, size_t cap) {
    const char *keep = getenv("MINIENC_KEEP_PLOTS");
    if (keep && keep[0]) {
        snprintf(buf, cap, "%s", keep);
        mkdir(buf, 0755);
        return 1;
    }
    me_make_temp_dir(buf, cap);
    return 0;
}

void me_remove_tree(const char *path) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) print_error("could not remove %s\n", path);
}

const char *me_test_bin(void) {
    const char *b = getenv("MINIENC_BIN");
    return b ? b : "build/minienc";
}

const char *me_test_source_dir(void) {
    const char *s = getenv("MINIENC_SOURCE_DIR");
    return s ? s : ".";
}

int me_run_capture(const char *cmd, char *out, size_t cap) {
    char full[8192];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t used = 0;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, p)) > 0) {
        if (out && used + 1 < cap) {
            size_t take = got < cap - 1 - used ? got : cap - 1 - used;
            memcpy(out + used, chunk, take);
            used += take;
        }
    }
    if (out && cap) out[used] = '\0';
    int st = pclose(p);
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

char *me_read_text(const char *path, char *buf, size_t cap) {
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) return buf;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

me_cli_result me_run_cli(const char *env, const char *args, const char *tmp_dir) {
    me_cli_result r;
    memset(&r, 0, sizeof r);
    size_t cap = strlen(env) + strlen(args) + 4096;
    char *cmd = malloc(cap);
    assert_non_null(cmd);
    snprintf(cmd, cap, "cd '%s' && OPENBLAS_NUM_THREADS=1 %s timeout 120 '%s' %s >'%s/stdout' 2>'%s/stderr'",
             me_test_source_dir(), env, me_test_bin(), args, tmp_dir, tmp_dir);
    int st = system(cmd);
    free(cmd);
    r.code = st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/stdout", tmp_dir);
    me_read_text(path, r.stdout_text, sizeof r.stdout_text);
    snprintf(path, sizeof path, "%s/stderr", tmp_dir);
    me_read_text(path, r.stderr_text, sizeof r.stderr_text);
    for (char *line = r.stderr_text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        size_t len = next ? (size_t)(next - line) : strlen(line);
        if (next) next++;
        if (len >= 16 && strncmp(line, "minienc: error: ", 16) == 0) {
            if (r.error_lines++ == 0) snprintf(r.error, sizeof r.error, "%.*s", (int)len, line);
        } else if (!(len >= 18 && strncmp(line, "minienc: training ", 18) == 0)) {
            r.other_lines++;
        }
    }
    return r;
}
