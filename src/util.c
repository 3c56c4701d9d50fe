/* Small private helpers declared in src/internal.h. */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void *me_alloc(size_t bytes) {
    void *ptr = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes || rounded == 0) return NULL;
    if (posix_memalign(&ptr, 64, rounded) != 0) return NULL;
    memset(ptr, 0, rounded);
    return ptr;
}

void me_free(void *ptr) { free(ptr); }

double me_machine_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0.0;
}

me_status me_refuse_beyond_memory(double need, double held, const char *hint, me_error *err, const char *fmt, ...) {
    double have = me_machine_bytes();
    if (have <= 0 || need + held <= have) return ME_OK;
    char what[ME_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return me_error_set(err, ME_ERR_CONFIG, "%s, but this machine has %.1f GiB%s", what, me_gib(have),
                        hint ? hint : "");
}

char *me_shape_string(char *buf, size_t cap, int ndim, const size_t *shape) {
    size_t used = 0;
    used += (size_t)snprintf(buf + used, cap - used, "[");
    for (int d = 0; d < ndim && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, d ? ", %zu" : "%zu", shape[d]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
    return buf;
}

int me_shape_equal(int ndim_a, const size_t *a, int ndim_b, const size_t *b) {
    if (ndim_a != ndim_b) return 0;
    for (int d = 0; d < ndim_a; d++)
        if (a[d] != b[d]) return 0;
    return 1;
}

char *me_format_count(char *buf, size_t cap, size_t n) {
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%zu", n);
    size_t o = 0;
    for (int i = 0; i < len && o + 1 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0 && o + 2 < cap) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o < cap ? o : cap - 1] = '\0';
    return buf;
}

int me_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

double me_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void me_mean_std(const float *x, size_t n, double *mean, double *sd) {
    double s = 0, v = 0;
    for (size_t j = 0; j < n; j++) s += x[j];
    *mean = n ? s / (double)n : 0.0;
    for (size_t j = 0; j < n; j++) v += (x[j] - *mean) * (x[j] - *mean);
    *sd = n ? sqrt(v / (double)n) : 0.0;
}

void me_moving_average(const double *y, size_t n, size_t half, double *out) {
    double sum = 0;
    size_t cnt = 0, lo = 0, hi = 0; /* window [lo, hi) */
    for (size_t i = 0; i < n; i++) {
        size_t want_lo = i > half ? i - half : 0, want_hi = i + half + 1 < n ? i + half + 1 : n;
        for (; hi < want_hi; hi++)
            if (isfinite(y[hi])) sum += y[hi], cnt++;
        for (; lo < want_lo; lo++)
            if (isfinite(y[lo])) sum -= y[lo], cnt--;
        out[i] = cnt ? sum / (double)cnt : NAN;
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double me_median(double *x, size_t n) {
    qsort(x, n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}
