/* Data parallelism: a group of processes that each compute one contiguous shard of every batch and
 * sum their gradients. The library itself stays free of MPI: this header is the interface training
 * and the benchmark use, and the MPI implementation lives in a plugin (minienc-mpi.so, built from
 * src/mpi/dist_mpi.c against Open MPI) that me_dist_open loads only in a process that mpirun started,
 * so a plain `minienc train` neither links nor starts MPI.
 *
 * Shards. A batch of n examples is split into `parts` contiguous shards, shard i holding examples
 * [n*i/parts, n*(i+1)/parts) (me_shard_range; uneven splits are fine, a shard may be empty). Each
 * shard's loss gradient is normalised by the whole batch's target count, so the shards' gradients
 * sum to the gradient of the whole batch's mean loss; dropout masks are counter-based on the example's
 * index in the whole batch (ops.h), so they do not depend on the split. The same split serves MPI ranks
 * and thread shards inside a rank (me_shards_step, src/internal.h).
 *
 * Determinism. The gradient sum does not use MPI_Allreduce, whose algorithm (and so its summation
 * order) Open MPI picks by message size and process count. Instead the block is cut into one piece
 * per rank; rank j receives every rank's copy of piece j (MPI_Alltoallv, no arithmetic in MPI), adds
 * them in rank order 0, 1, ..., N-1, and the sums are gathered back to everyone (MPI_Allgatherv,
 * in place). Every rank therefore ends with the same bits, the same ones on every run with N ranks,
 * and a rank sends and receives 2 (N-1)/N x 4 bytes x parameters per step, as a ring allreduce does.
 * Small sums (the shards' losses) are gathered and added in rank order in the same way.
 *
 * Failures. A function that fails on one rank cannot make the others wait forever: every rank calls
 * me_dist_agree after each phase that can fail, and a failure anywhere becomes a failure everywhere,
 * reported (by the CLI) on the lowest failing rank only.
 *
 * Ownership: me_dist_open fills a caller-owned me_dist; me_dist_close releases what it took. */
#ifndef MINIENC_DIST_H
#define MINIENC_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "minienc/status.h"

typedef struct me_dist_ops me_dist_ops;

typedef struct {
    int rank, size;             /* this process and the group's size */
    int local_rank, local_size; /* the same among the processes on this node */
    int fail_rank;              /* -1, or the rank that reports the failure me_dist_agree found */
    const me_dist_ops *ops;     /* the implementation (the MPI plugin) */
    void *impl;
    void *plugin;               /* dlopen handle */
} me_dist;

/* What an implementation provides. Every call is collective: all ranks make the same calls in the
 * same order. */
struct me_dist_ops {
    /* out[size * n] = every rank's in[n], in rank order. A rank that waits here long (for another
     * that works alone) sleeps instead of spinning. All agreements go through this one call. */
    me_status (*allgather)(void *impl, const double *in, int n, double *out, me_error *err);
    /* buf[bytes] on every rank = rank root's */
    me_status (*bcast)(void *impl, void *buf, size_t bytes, int root, me_error *err);
    /* The gradient sum of grad[n] (see above), in three calls: begin before the backward pass, ready
     * whenever grad[from, n) has become final (pieces lying wholly there may start moving), finish
     * after the backward pass (returns when grad holds the sum). */
    me_status (*grad_begin)(void *impl, float *grad, size_t n, me_error *err);
    void (*grad_ready)(void *impl, size_t from);
    me_status (*grad_finish)(void *impl, me_error *err);
    void (*close)(void *impl);
};

/* The name of the function the plugin exports, and its type. */
#define ME_DIST_PLUGIN_ENTRY "me_dist_mpi_open"
typedef me_status (*me_dist_plugin_open_fn)(me_dist *d, me_error *err);

/* Number of processes of the job when this process was started by mpirun (Open MPI's
 * OMPI_COMM_WORLD_SIZE, or PMIX_RANK with PMI_SIZE / OMPI_UNIVERSE_SIZE), else 0. Reads the
 * environment only. *local_size (may be NULL) gets the processes on this node (0 if unknown). */
int me_dist_launched(int *local_size);

/* Loads the plugin at plugin_path and joins the job (MPI_Init). ME_ERR_IO naming the path when it
 * cannot be loaded. */
me_status me_dist_open(me_dist *d, const char *plugin_path, me_error *err);

/* Leaves the job (MPI_Finalize) and unloads the plugin. Safe on a zeroed me_dist. */
void me_dist_close(me_dist *d);

/* Shard i of n items split into `parts` contiguous shards: [*lo, *hi). */
void me_shard_range(size_t n, int parts, int i, size_t *lo, size_t *hi);

/* The gradient sum's hook into the backward pass (me_encoder's ready, with ctx the me_dist): the plugin's
 * grad_ready. */
void me_dist_grads_ready(void *ctx, size_t from);

/* The agreement after a phase that can fail. mine: this rank's status (its message in err);
 * *stop (may be NULL): in, this rank's stop request; out, whether any rank asked to stop.
 * Returns ME_OK when every rank succeeded. Otherwise the status of the lowest failing rank, which
 * d->fail_rank names: that rank keeps its own message in err; the others get "rank R failed" (the
 * CLI prints the message on d->fail_rank only). d may be NULL or of size 1 (then: mine). */
me_status me_dist_agree(me_dist *d, me_status mine, int *stop, me_error *err);

/* sum[n] = sum over ranks, in rank order, of every rank's in[n]. d may be NULL. */
me_status me_dist_sum(me_dist *d, const double *in, int n, double *sum, me_error *err);

/* A failure every rank detected at the same point (a NaN in the summed gradient, say): marks rank 0
 * as the one that reports it and returns st. */
me_status me_dist_fail_together(me_dist *d, me_status st);

/* A 64-bit hash of n floats' bits (not cryptographic: it catches copies that drifted apart), chained
 * from h (start with ME_DIST_HASH_INIT). */
uint64_t me_dist_hash(uint64_t h, const float *x, size_t n);
#define ME_DIST_HASH_INIT 0xcbf29ce484222325ull

/* Compares a hash across ranks: ME_ERR_CHECK on every rank, naming the ranks that differ from rank 0
 * and `what`, if any differs (reported by rank 0). */
me_status me_dist_check_same(me_dist *d, uint64_t hash, const char *what, me_error *err);

#endif
