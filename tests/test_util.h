/* Shared helpers for the cmocka tests. Include after <cmocka.h>'s prerequisites
 * (stdarg.h, stddef.h, stdint.h, setjmp.h) — this header includes them itself. */
#ifndef MINIENC_TEST_UTIL_H
#define MINIENC_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "minienc/rng.h"

/* Fails the test unless max|got - want| <= rtol * max(max|want|, tiny). Prints the worst index,
 * both values, and what (a label) on failure. Returns the achieved relative error. */
double me_check_close(const char *what, const float *got, const float *want, size_t n, double rtol);
#define assert_tensor_close(got, want, n, rtol) me_check_close(#got, (got), (want), (n), (rtol))

/* A loss evaluated in double by re-running a forward pass; ctx is the test's own state. */
typedef double (*me_loss_fn)(void *ctx);

/* Central finite-difference check along a random direction u: compares
 * (L(w + eps u) - L(w - eps u)) / (2 eps) with dot(g, u), relative to sum |g_i u_i| (so that a
 * near-cancelling dot product does not demand absurd precision). w[n] is restored afterwards. Fails
 * the test, naming `what`, if the relative difference exceeds rtol; returns it. */
double me_fd_check_direction(me_loss_fn loss, void *ctx, const char *what, float *w, const float *g, size_t n,
                             double eps, double rtol, me_rng *rng);

/* Fills x[n] with uniform values in [lo, hi). */
void me_fill_uniform(float *x, size_t n, float lo, float hi, me_rng *r);

/* Makes a fresh empty directory under /tmp and writes its path into buf (cap bytes). */
void me_make_temp_dir(char *buf, size_t cap);
/* The folder for a test's pictures: $MINIENC_KEEP_PLOTS (created if needed) to keep them for
 * viewing, else a fresh temporary directory. Returns 1 when the folder is to be kept. */
int me_make_output_dir(char *buf, size_t cap);

/* Removes a directory tree (rm -rf). */
void me_remove_tree(const char *path);

/* Path of the minienc binary (env MINIENC_BIN, else build/minienc) and the source dir. */
const char *me_test_bin(void);
const char *me_test_source_dir(void);

/* Reads at most cap - 1 bytes of a file into buf, NUL-terminated ("" if it cannot be read). Returns buf. */
char *me_read_text(const char *path, char *buf, size_t cap);

/* One run of the binary: exit code (128 + signal if killed, -1 if it could not run), stdout, stderr,
 * and stderr's lines sorted into "minienc: error: " lines (the first kept in error) and other lines
 * (train's "minienc: training ..." banner counts as neither). */
typedef struct {
    int code;
    int error_lines, other_lines;
    char error[2048];
    char stdout_text[8192];
    char stderr_text[8192];
} me_cli_result;

/* Runs `ENV minienc ARGS` (shell text; ENV is variable assignments or "") from the source dir with
 * OPENBLAS_NUM_THREADS=1 and a 120 s time limit, stdout and stderr going to files in tmp_dir. */
me_cli_result me_run_cli(const char *env, const char *args, const char *tmp_dir);

/* Runs a shell command, capturing stdout+stderr into out (may be NULL). Returns the exit status
 * (0..255) or -1 when the command could not run. */
int me_run_capture(const char *cmd, char *out, size_t cap);

#endif
