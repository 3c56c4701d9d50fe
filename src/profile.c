/* Per-operation step profile (see profile.h). */
#include "profile.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

_Thread_local me_prof_state me_prof;

const char *const me_prof_names[ME_PROF_N] = {
    "matmul in_proj (qkv)", "matmul out_proj", "matmul linear1", "matmul linear2", "matmul head",
    "attention", "LayerNorm", "elementwise", "optimizer", "synchronisation",
};

void me_prof_enable(int on) {
    memset(&me_prof, 0, sizeof me_prof);
    me_prof.on = on;
}

void me_prof_take(me_prof_totals *out) {
    *out = me_prof.acc;
    memset(&me_prof.acc, 0, sizeof me_prof.acc);
}

double me_prof_region_cost(int reps) {
    double *t = malloc((size_t)(reps > 0 ? reps : 1) * sizeof *t);
    if (!t || reps <= 0) {
        free(t);
        return 0.0;
    }
    volatile int sink = 0;
    for (int r = -reps / 10; r < reps; r++) {
        double t0 = me_now_s();
#pragma omp parallel
        {
            if (omp_get_thread_num() == 0) sink = sink + 1;
        }
        if (r >= 0) t[r] = me_now_s() - t0;
    }
    double med = me_median(t, (size_t)reps);
    free(t);
    return med;
}
