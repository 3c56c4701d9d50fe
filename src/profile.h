/* Per-operation time of a training step, for `minienc bench --profile`. Private (not API).
 *
 * The kernels' callers wrap each operation in ME_PROF(op, call). Profiling is off unless the calling
 * thread turned it on (me_prof_enable), and then a scope costs one thread-local load and a branch: no
 * clock is read. When on, each scope adds its wall time to the current phase's accumulator of its
 * operation and counts the parallel regions (OpenMP fork/joins) the kernels entered inside it
 * (ME_PAR in the kernels' `if` clauses; the encountering thread evaluates those, so only the thread
 * that runs the step counts). Scopes do not nest.
 *
 * The state is per thread (thread-local): a worker that runs its own passes (data parallelism across
 * threads) records nothing unless it enabled profiling itself. */
#ifndef MINIENC_PROFILE_H
#define MINIENC_PROFILE_H

#include <omp.h>

#include "internal.h"

typedef enum {
    ME_PROF_QKV,         /* in_proj: the packed q, k, v projection (matmul and bias) */
    ME_PROF_OUT_PROJ,    /* out_proj */
    ME_PROF_LINEAR1,     /* FFN linear1 */
    ME_PROF_LINEAR2,     /* FFN linear2 */
    ME_PROF_HEAD,        /* the full model's head (not in bench: the encoder stack alone) */
    ME_PROF_ATTENTION,   /* scores, softmax, dropout on the weights, weights x values, per head */
    ME_PROF_LAYERNORM,   /* LayerNorm forward and backward */
    ME_PROF_ELEMENTWISE, /* activation, dropout, residual adds, gradient copies and clears */
    ME_PROF_OPTIMIZER,   /* the optimizer update */
    ME_PROF_SYNC,        /* waiting for other threads (the gradient sum of a data-parallel step) */
    ME_PROF_N
} me_prof_op;

/* Columns: forward pass, backward pass (and the update). */
enum { ME_PROF_FORWARD, ME_PROF_BACKWARD, ME_PROF_PHASES };

typedef struct {
    double s[ME_PROF_N][ME_PROF_PHASES];      /* seconds */
    long regions[ME_PROF_N][ME_PROF_PHASES];  /* parallel regions entered */
} me_prof_totals;

typedef struct {
    int on, phase;
    long regions;       /* parallel regions entered so far */
    me_prof_totals acc; /* since the last me_prof_take */
} me_prof_state;

extern _Thread_local me_prof_state me_prof;

/* Short row names ("matmul in_proj", ...), [ME_PROF_N]. */
extern const char *const me_prof_names[ME_PROF_N];

/* Turns profiling on or off for the calling thread, clearing its accumulators. */
void me_prof_enable(int on);
/* Sets the column the following scopes add to. */
static inline void me_prof_phase(int phase) { me_prof.phase = phase; }
/* Copies the accumulators into *out and clears them. */
void me_prof_take(me_prof_totals *out);

/* Wraps the condition of a kernel's parallel region: counts the region when profiling. */
static inline int me_prof_par(int cond) {
    /* inside another region (a thread shard) the kernel's region is inactive: no fork, nothing to count */
    if (cond && me_prof.on && omp_get_level() == 0) me_prof.regions++;
    return cond;
}
#define ME_PAR(cond) me_prof_par((cond) != 0)

typedef struct {
    double t;
    long regions;
} me_prof_mark;

static inline me_prof_mark me_prof_begin(void) {
    me_prof_mark m = {0.0, 0};
    if (me_prof.on) m.t = me_now_s(), m.regions = me_prof.regions;
    return m;
}

static inline void me_prof_end(me_prof_op op, me_prof_mark m) {
    if (!me_prof.on) return;
    me_prof.acc.s[op][me_prof.phase] += me_now_s() - m.t;
    me_prof.acc.regions[op][me_prof.phase] += me_prof.regions - m.regions;
}

#define ME_PROF(op, call)                     \
    do {                                      \
        me_prof_mark me_prof_m_ = me_prof_begin(); \
        call;                                 \
        me_prof_end(op, me_prof_m_);          \
    } while (0)

/* Median seconds of one empty parallel region with the current thread count (fork, join barrier),
 * over reps regions: what each region of a step costs in synchronisation alone. */
double me_prof_region_cost(int reps);

#endif
