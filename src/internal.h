/* Private helpers shared by the library's modules and the command line; not part of the API (nothing
 * under include/ may include this file). Implemented in src/util.c unless noted. */
#ifndef MINIENC_INTERNAL_H
#define MINIENC_INTERNAL_H

#include <omp.h>
#include <stddef.h>
#include <stdint.h>

#include "minienc/params.h"
#include "minienc/status.h"

/* ---- code generation ---- */

/* On a function: compiled for AVX-512, for AVX2 + FMA and for baseline x86-64, the loader picking the
 * one this CPU runs (GCC on x86-64; elsewhere one ordinary build). The library is built for the
 * baseline otherwise, so this is how a hot loop gets wide registers on any machine. Without
 * -ffp-contract=fast or reassociation the clones give the same bits (an operation on 8 lanes rounds
 * as on one). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ME_TARGET_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ME_TARGET_CLONES
#endif

/* Inside an OpenMP parallel region: the calling thread's contiguous part [lo, hi) of n items (the
 * parts of all threads cover 0..n in order, as schedule(static) would). */
static inline void me_thread_range(size_t n, size_t *lo, size_t *hi) {
    size_t th = (size_t)omp_get_thread_num(), nth = (size_t)omp_get_num_threads();
    *lo = n * th / nth, *hi = n * (th + 1) / nth;
}

/* ---- data parallelism inside a process (dist.c) ---- */

/* One step of data parallelism inside the process over n >= 1 thread shards, each a registry with its
 * own gradient block: pass(ctx, i) runs shard i's forward and backward (on one thread; kernels called
 * inside the parallel region run single-threaded) into shards[i]'s gradients, zeroed here first, and
 * returns the shard's summed loss, kept in loss[i] (scratch of n doubles). Then the blocks are added
 * in shard order into into->grad (me_params_sum_grads, which overwrites it), so the result depends on
 * n, not on the thread count. Returns the losses summed in shard order. A profile (profile.h) charges
 * a thread's wait for the others, and the sum, to ME_PROF_SYNC. */
typedef double (*me_shard_pass_fn)(void *ctx, int i);
double me_shards_step(me_params *into, me_params *const *shards, int n, me_shard_pass_fn pass, void *ctx,
                      double *loss);

/* ---- memory ---- */

/* 64-byte aligned, zeroed allocation; NULL on failure or a size that overflows. Free with me_free. */
void *me_alloc(size_t bytes);
void me_free(void *ptr);

/* Physical memory of the machine in bytes (0 if unknown): the bound for refusing absurd sizes. */
double me_machine_bytes(void);

/* Bytes as GiB, for messages. */
static inline double me_gib(double bytes) { return bytes / 1073741824.0; }

/* Refuses a size beyond the machine's memory before anything is allocated: zeroed memory is touched
 * memory, and an over-committed allocation would end in the kernel's OOM killer instead of an error.
 * ME_OK when need + held bytes fit in the machine's physical memory (or its size is unknown; held:
 * bytes already taken, counted but not named). Otherwise ME_ERR_CONFIG with the message
 * "WHAT, but this machine has N GiB" + hint (may be NULL), WHAT formatted from fmt, e.g.
 * "batch %d x seq %d needs %.1f GiB of activations", b, s, me_gib(need). */
me_status me_refuse_beyond_memory(double need, double held, const char *hint, me_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* a*b into *out, returning 0 on size_t overflow. */
static inline int me_mul_ok(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > (size_t)-1 / a) return 0;
    *out = a * b;
    return 1;
}

/* ---- shapes and numbers as text ---- */

/* Formats a shape as "[3, 512]" into buf. Returns buf. */
char *me_shape_string(char *buf, size_t cap, int ndim, const size_t *shape);

/* 1 if the two shapes have the same rank and extents. */
int me_shape_equal(int ndim_a, const size_t *a, int ndim_b, const size_t *b);

/* Formats n with thousands separators ("3,152,384") into buf. Returns buf. */
char *me_format_count(char *buf, size_t cap, size_t n);

/* 1 if s ends with suffix. */
int me_ends_with(const char *s, const char *suffix);

/* Optimal string alignment distance between a[0..la) and b[0..lb), case-insensitive, for "did you
 * mean" hints (inputs longer than 63 characters are cut). Implemented in src/config.c. */
int me_edit_distance(const char *a, size_t la, const char *b, size_t lb);

/* ---- time and statistics ---- */

/* Seconds on the monotonic clock (an arbitrary origin): for intervals only. */
double me_now_s(void);

/* Mean and population standard deviation of x[n], accumulated in double, in index order (0 and 0 for
 * n = 0). */
void me_mean_std(const float *x, size_t n, double *mean, double *sd);

/* out[i] = mean of the finite y[j] for |j − i| <= half (NaN when there are none): a centred moving
 * average over 2 half + 1 values, shorter at the ends. O(n). */
void me_moving_average(const double *y, size_t n, size_t half, double *out);

/* Median of x[n] (n >= 1), the mean of the two middle values for even n; sorts x in place. */
double me_median(double *x, size_t n);

#endif
