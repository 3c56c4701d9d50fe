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

/* Fills x[n] with uniform values in [lo, hi). */
void me_fill_uniform(float *x, size_t n, float lo, float hi, me_rng *r);

/* Makes a fresh empty directory under /tmp and writes its path into buf (cap bytes). */
void me_make_temp_dir(char *buf, size_t cap);
/* Removes a directory tree (rm -rf). */
void me_remove_tree(const char *path);

/* Path of the minienc binary (env MINIENC_BIN, else build/minienc) and the source dir. */
const char *me_test_bin(void);
const char *me_test_source_dir(void);

/* Runs a shell command, capturing stdout+stderr into out (may be NULL). Returns the exit status
 * (0..255) or -1 when the command could not run. */
int me_run_capture(const char *cmd, char *out, size_t cap);

#endif
