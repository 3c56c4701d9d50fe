/* The MPI-free half of data parallelism: detecting mpirun, loading the plugin, shard ranges, the
 * thread shards' step, and the agreements built on the plugin's rank-ordered gather. */
#include "minienc/dist.h"

#include "minienc/rng.h"
#include "profile.h"

#include <assert.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int env_int(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    long n = strtol(v, &end, 10);
    return *end == '\0' && n > 0 && n < (1L << 24) ? (int)n : 0;
}

int me_dist_launched(int *local_size) {
    /* Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE and OMPI_COMM_WORLD_LOCAL_SIZE in every process it
     * starts; a PMIx launcher (srun --mpi=pmix) sets PMIX_RANK, with the size in OMPI_UNIVERSE_SIZE
     * or PMI_SIZE when known. */
    int size = env_int("OMPI_COMM_WORLD_SIZE"), local = env_int("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!size && getenv("PMIX_RANK")) {
        size = env_int("OMPI_UNIVERSE_SIZE");
        if (!size) size = env_int("PMI_SIZE");
        if (!size) size = 1; /* the plugin asks MPI for the real size */
    }
    if (local_size) *local_size = size ? local : 0;
    return size;
}

me_status me_dist_open(me_dist *d, const char *plugin_path, me_error *err) {
    memset(d, 0, sizeof *d);
    d->fail_rank = -1;
    d->plugin = dlopen(plugin_path, RTLD_NOW | RTLD_LOCAL);
    if (!d->plugin) {
        const char *why = dlerror();
        return me_error_set(err, ME_ERR_IO, "%s: cannot load the MPI plugin (%s); expected a build with Open MPI "
                            "(libopenmpi-dev installed when cmake ran)", plugin_path, why ? why : "unknown error");
    }
    me_dist_plugin_open_fn open_fn;
    /* POSIX: a function pointer travels through dlsym's void * */
    *(void **)&open_fn = dlsym(d->plugin, ME_DIST_PLUGIN_ENTRY);
    if (!open_fn) {
        dlclose(d->plugin);
        d->plugin = NULL;
        return me_error_set(err, ME_ERR_IO, "%s: no %s in the MPI plugin, expected minienc's own plugin", plugin_path,
                            ME_DIST_PLUGIN_ENTRY);
    }
    void *handle = d->plugin;
    me_status st = open_fn(d, err);
    d->plugin = handle;
    d->fail_rank = -1;
    if (st) {
        dlclose(d->plugin);
        d->plugin = NULL;
    }
    return st;
}

void me_dist_close(me_dist *d) {
    if (d->ops && d->ops->close) d->ops->close(d->impl);
    /* the plugin stays mapped: MPI and its own libraries may have registered exit handlers */
    d->ops = NULL;
    d->impl = NULL;
}

void me_shard_range(size_t n, int parts, int i, size_t *lo, size_t *hi) {
    /* n * i / parts without overflow for any n a batch can have */
    *lo = (size_t)((unsigned long long)n * (unsigned)i / (unsigned)parts);
    *hi = (size_t)((unsigned long long)n * (unsigned)(i + 1) / (unsigned)parts);
}

void me_dist_grads_ready(void *ctx, size_t from) {
    me_dist *d = ctx;
    d->ops->grad_ready(d->impl, from);
}

static void barrier(void) {
#pragma omp barrier
}

double me_shards_step(me_params *into, me_params *const *shards, int n, me_shard_pass_fn pass, void *ctx,
                      double *loss) {
    assert(n >= 1);
    int nt = omp_get_max_threads() < n ? omp_get_max_threads() : n;
#pragma omp parallel num_threads(nt)
    {
        /* shard i on thread i mod nt, as schedule(static, 1) would */
        for (int i = omp_get_thread_num(); i < n; i += omp_get_num_threads()) {
            me_params_zero_grad(shards[i]);
            loss[i] = pass(ctx, i);
        }
        ME_PROF(ME_PROF_SYNC, barrier());
    }
    ME_PROF(ME_PROF_SYNC, me_params_sum_grads(into, (const me_params *const *)shards, n));
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += loss[i];
    return sum;
}

static int alone(const me_dist *d) { return !d || d->size <= 1 || !d->ops; }

me_status me_dist_agree(me_dist *d, me_status mine, int *stop, me_error *err) {
    if (alone(d)) return mine;
    double in[2] = {(double)mine, stop ? (double)(*stop != 0) : 0.0}, *all = malloc(sizeof(double) * 2 * d->size);
    if (!all) return me_error_set(err, ME_ERR_NOMEM, "rank %d: out of memory for %d ranks", d->rank, d->size);
    me_status st = d->ops->allgather(d->impl, in, 2, all, err);
    if (st) {
        free(all);
        d->fail_rank = d->rank;
        return st;
    }
    int first = -1, any_stop = 0;
    for (int r = 0; r < d->size; r++) {
        if (first < 0 && all[2 * r] != 0.0) first = r;
        any_stop |= all[2 * r + 1] != 0.0;
    }
    me_status theirs = first >= 0 ? (me_status)(int)all[2 * first] : ME_OK;
    free(all);
    if (stop) *stop = any_stop;
    if (first < 0) return ME_OK;
    d->fail_rank = first;
    if (first == d->rank) return mine;
    return me_error_set(err, theirs, "rank %d failed (see its message)", first);
}

me_status me_dist_sum(me_dist *d, const double *in, int n, double *sum, me_error *err) {
    if (alone(d)) {
        memcpy(sum, in, sizeof(double) * (size_t)n);
        return ME_OK;
    }
    double *all = malloc(sizeof(double) * (size_t)n * (size_t)d->size);
    if (!all) return me_error_set(err, ME_ERR_NOMEM, "rank %d: out of memory for %d ranks", d->rank, d->size);
    me_status st = d->ops->allgather(d->impl, in, n, all, err);
    for (int i = 0; !st && i < n; i++) {
        double s = all[i];
        for (int r = 1; r < d->size; r++) s += all[(size_t)r * n + i]; /* rank order: the same bits everywhere */
        sum[i] = s;
    }
    free(all);
    return st;
}

me_status me_dist_fail_together(me_dist *d, me_status st) {
    if (d && st) d->fail_rank = 0;
    return st;
}

uint64_t me_dist_hash(uint64_t h, const float *x, size_t n) {
    /* four independent lanes of (lane ^ word) * odd, rotated: each step is a bijection of the lane for
     * a given word, so a difference anywhere survives to the end; four lanes keep the multiplies'
     * latency off the critical path (a 19 M-parameter model hashes in milliseconds) */
    uint64_t lane[4] = {h, h ^ ME_RNG_GAMMA, h + ME_RNG_GAMMA, ~h};
    size_t i = 0, nw = n / 2;
    for (; i + 4 <= nw; i += 4)
        for (int j = 0; j < 4; j++) {
            uint64_t w;
            memcpy(&w, x + 2 * (i + (size_t)j), sizeof w);
            uint64_t v = (lane[j] ^ w) * 0x100000001b3ull;
            lane[j] = (v << 31) | (v >> 33);
        }
    for (size_t k = 2 * i; k < n; k++) {
        uint32_t w;
        memcpy(&w, x + k, sizeof w);
        uint64_t v = (lane[0] ^ w) * 0x100000001b3ull;
        lane[0] = (v << 31) | (v >> 33);
    }
    uint64_t out = n;
    for (int j = 0; j < 4; j++) out = me_rng_mix64(out ^ lane[j]);
    return out;
}

me_status me_dist_check_same(me_dist *d, uint64_t hash, const char *what, me_error *err) {
    if (alone(d)) return ME_OK;
    /* two exact halves: a double holds 53 bits */
    double in[2] = {(double)(hash >> 32), (double)(hash & 0xffffffffu)}, *all = malloc(sizeof(double) * 2 * d->size);
    if (!all) return me_error_set(err, ME_ERR_NOMEM, "rank %d: out of memory for %d ranks", d->rank, d->size);
    me_status st = d->ops->allgather(d->impl, in, 2, all, err);
    if (st) {
        free(all);
        return st;
    }
    char ranks[256] = "";
    size_t used = 0;
    int bad = 0;
    for (int r = 1; r < d->size; r++)
        if (all[2 * r] != all[0] || all[2 * r + 1] != all[1]) {
            bad++;
            if (used + 16 < sizeof ranks)
                used += (size_t)snprintf(ranks + used, sizeof ranks - used, "%s%d", bad > 1 ? ", " : "", r);
        }
    free(all);
    if (!bad) return ME_OK;
    d->fail_rank = 0;
    return me_error_set(err, ME_ERR_CHECK, "%s: rank%s %s hold%s different values from rank 0 (checksums differ); "
                        "expected identical copies on every rank (same binary and libraries on every node)", what,
                        bad > 1 ? "s" : "", ranks, bad > 1 ? "" : "s");
}
