/* The MPI implementation of dist.h, built as the plugin minienc-mpi.so against Open MPI and loaded by
 * me_dist_open only in processes mpirun started (so the library and a plain `minienc` never link MPI).
 *
 * Gradient sum, rank-ordered (see dist.h): the gradient block is cut into buckets; bucket [a, b) is cut
 * into one piece per rank, piece j = [a + L j / N, a + L (j + 1) / N) with L = b - a. Phase 1: rank j
 * receives every other rank's piece j (MPI_Ialltoallv straight from the gradient block, nothing sent
 * to itself) and adds the N copies in rank order into its own block. Phase 2: the summed pieces go to
 * every rank (MPI_Iallgatherv in place). MPI moves bytes and adds nothing, so the sum's bits do not
 * depend on Open MPI's choice of algorithm, on timing, or on the bucket size.
 *
 * Overlap: the backward pass reports which tail of the block is final (grad_ready); buckets lying
 * wholly inside it start phase 1 at once and every later report drives the library's progress
 * (MPI_Testsome), so a network can move a bucket while earlier layers are still being differentiated.
 * MINIENC_DIST_BUCKET_MB sets the bucket size (default 8 MiB; 0: one bucket, reduced after the
 * backward pass). */
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "minienc/dist.h"

#define DEFAULT_BUCKET_BYTES (8u << 20)

typedef struct {
    size_t lo, hi;       /* the bucket's range of the gradient block */
    size_t recv_off;     /* its phase-1 receive area in recv: (size - 1) pieces of this rank */
    int *v;              /* [6 * size] counts and displacements: send, receive (phase 1), gather (phase 2);
                            MPI must not see them change while the operations are in flight */
    int started, summed; /* phase 1 started; phase 2 started */
    MPI_Request req[2];  /* phase 1, phase 2 */
} bucket;

typedef struct {
    MPI_Comm comm;
    int rank, size;
    size_t bucket_floats; /* 0: one bucket */
    /* the gradient sum of the current step */
    float *grad;
    size_t n;
    bucket *b;
    int nb, cap_b, next; /* buckets; next: highest index not started (they start from the end) */
    float *recv;
    size_t recv_cap;
    int *counts;          /* [6 * size * cap_b]: the buckets' v arrays */
} mpi_dist;

static me_status mpi_fail(const mpi_dist *m, int rc, const char *what, me_error *err) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error %d", rc);
    return me_error_set(err, ME_ERR_IO, "rank %d: MPI %s failed: %s", m->rank, what, text);
}

/* Completes req: spinning for the first millisecond (ranks in step arrive within microseconds of each
 * other), then napping, so that a rank waiting for another that works alone (rank 0 drawing charts, a
 * one-rank benchmark) leaves its core free. */
static int wait_gently(MPI_Request *req) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const struct timespec nap = {0, 200000};
    int done = 0, rc;
    while ((rc = MPI_Test(req, &done, MPI_STATUS_IGNORE)) == MPI_SUCCESS && !done) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > 1000000L) nanosleep(&nap, NULL);
    }
    return rc;
}

static me_status d_allgather(void *impl, const double *in, int n, double *out, me_error *err) {
    mpi_dist *m = impl;
    MPI_Request req;
    int rc = MPI_Iallgather(in, n, MPI_DOUBLE, out, n, MPI_DOUBLE, m->comm, &req);
    if (rc == MPI_SUCCESS) rc = wait_gently(&req);
    return rc == MPI_SUCCESS ? ME_OK : mpi_fail(m, rc, "Iallgather", err);
}

static me_status d_bcast(void *impl, void *buf, size_t bytes, int root, me_error *err) {
    mpi_dist *m = impl;
    /* counts are int: large blocks go in chunks */
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < bytes; off += chunk) {
        size_t len = bytes - off < chunk ? bytes - off : chunk;
        int rc = MPI_Bcast((char *)buf + off, (int)len, MPI_BYTE, root, m->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(m, rc, "Bcast", err);
    }
    return ME_OK;
}

/* Piece j of bucket [lo, hi). */
static void piece(size_t lo, size_t hi, int size, int j, size_t *a, size_t *b) {
    size_t len = hi - lo;
    *a = lo + len * (size_t)j / (size_t)size;
    *b = lo + len * (size_t)(j + 1) / (size_t)size;
}

static me_status d_grad_begin(void *impl, float *grad, size_t n, me_error *err) {
    mpi_dist *m = impl;
    if (m->grad != grad || m->n != n) { /* first step, or another block: lay the buckets out once */
        size_t per = m->bucket_floats ? m->bucket_floats : n;
        if (per > (size_t)1 << 30) per = (size_t)1 << 30; /* counts and displacements are int */
        int nb = n ? (int)((n + per - 1) / per) : 0;
        if (nb > m->cap_b) {
            bucket *nbk = realloc(m->b, (size_t)nb * sizeof *nbk);
            if (nbk) m->b = nbk;
            int *v = realloc(m->counts, (size_t)nb * 6 * (size_t)m->size * sizeof *v);
            if (v) m->counts = v;
            if (!nbk || !v)
                return me_error_set(err, ME_ERR_NOMEM, "rank %d: out of memory for %d buckets", m->rank, nb);
            m->cap_b = nb;
        }
        size_t need = 0;
        for (int k = 0; k < nb; k++) {
            bucket *bk = &m->b[k];
            bk->lo = (size_t)k * per;
            bk->hi = bk->lo + per < n ? bk->lo + per : n;
            bk->recv_off = need;
            bk->v = m->counts + (size_t)k * 6 * (size_t)m->size;
            size_t a, b;
            piece(bk->lo, bk->hi, m->size, m->rank, &a, &b);
            int mine = (int)(b - a), at = 0;
            int *sc = bk->v, *sd = sc + m->size, *rc = sd + m->size, *rd = rc + m->size, *gc = rd + m->size,
                *gd = gc + m->size;
            for (int j = 0; j < m->size; j++) {
                size_t pa, pb;
                piece(bk->lo, bk->hi, m->size, j, &pa, &pb);
                /* phase 1: piece j to rank j (nothing to itself), this rank's piece from every other */
                sc[j] = j == m->rank ? 0 : (int)(pb - pa);
                sd[j] = (int)(pa - bk->lo);
                rc[j] = j == m->rank ? 0 : mine;
                rd[j] = at;
                at += rc[j];
                /* phase 2: piece j from rank j, in place */
                gc[j] = (int)(pb - pa);
                gd[j] = (int)(pa - bk->lo);
            }
            need += (size_t)at;
        }
        if (need > m->recv_cap) {
            float *r = realloc(m->recv, (need ? need : 1) * sizeof *r);
            if (!r) return me_error_set(err, ME_ERR_NOMEM, "rank %d: out of memory for a %.1f MiB receive buffer",
                                        m->rank, (double)need * sizeof(float) / 1048576.0);
            m->recv = r;
            m->recv_cap = need;
        }
        m->grad = grad;
        m->n = n;
        m->nb = nb;
    }
    for (int k = 0; k < m->nb; k++) {
        m->b[k].started = m->b[k].summed = 0;
        m->b[k].req[0] = m->b[k].req[1] = MPI_REQUEST_NULL;
    }
    m->next = m->nb - 1;
    return ME_OK;
}

/* Phase 1 of bucket k: every rank's piece j to rank j. */
static int start_phase1(mpi_dist *m, int k) {
    bucket *bk = &m->b[k];
    int *sc = bk->v, *sd = sc + m->size, *rc = sd + m->size, *rd = rc + m->size;
    bk->started = 1;
    return MPI_Ialltoallv(m->grad + bk->lo, sc, sd, MPI_FLOAT, m->recv + bk->recv_off, rc, rd, MPI_FLOAT, m->comm,
                          &bk->req[0]);
}

/* Adds the N copies of this rank's piece of bucket k in rank order, then starts phase 2. */
static int sum_and_gather(mpi_dist *m, int k) {
    bucket *bk = &m->b[k];
    size_t a, b;
    piece(bk->lo, bk->hi, m->size, m->rank, &a, &b);
    size_t len = b - a;
    float *own = m->grad + a;
    const float *in = m->recv + bk->recv_off; /* [size - 1][len], ranks in order without this one */
    /* own[i] = copy_0[i] + copy_1[i] + ... + copy_{N-1}[i], left to right, copy_rank being own[i] */
    for (size_t i = 0; i < len; i++) {
        float s = m->rank == 0 ? own[i] : in[i];
        for (int j = 1; j < m->size; j++) {
            int slot = j < m->rank ? j : j - 1; /* where rank j's copy lies in `in` */
            s += j == m->rank ? own[i] : in[(size_t)slot * len + i];
        }
        own[i] = s;
    }
    int *gc = bk->v + 4 * m->size, *gd = gc + m->size;
    bk->summed = 1;
    return MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, m->grad + bk->lo, gc, gd, MPI_FLOAT, m->comm,
                           &bk->req[1]);
}

static void d_grad_ready(void *impl, size_t from) {
    mpi_dist *m = impl;
    if (!m->bucket_floats) return; /* one bucket: everything after the backward pass */
    while (m->next >= 0 && m->b[m->next].lo >= from) {
        if (start_phase1(m, m->next) != MPI_SUCCESS) return; /* grad_finish reports it */
        m->next--;
    }
    /* drive progress; a bucket whose phase 1 is complete gets summed and gathered */
    for (int k = m->nb - 1; k > m->next; k--) {
        bucket *bk = &m->b[k];
        if (bk->summed) continue;
        int done = 0;
        if (MPI_Test(&bk->req[0], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || !done) break;
        if (sum_and_gather(m, k) != MPI_SUCCESS) return;
    }
}

static me_status d_grad_finish(void *impl, me_error *err) {
    mpi_dist *m = impl;
    int rc;
    while (m->next >= 0) {
        if ((rc = start_phase1(m, m->next)) != MPI_SUCCESS) return mpi_fail(m, rc, "Ialltoallv", err);
        m->next--;
    }
    for (int k = m->nb - 1; k >= 0; k--) { /* the order the buckets started in */
        bucket *bk = &m->b[k];
        if (bk->summed) continue;
        if ((rc = MPI_Wait(&bk->req[0], MPI_STATUS_IGNORE)) != MPI_SUCCESS) return mpi_fail(m, rc, "Ialltoallv", err);
        if ((rc = sum_and_gather(m, k)) != MPI_SUCCESS) return mpi_fail(m, rc, "Iallgatherv", err);
    }
    for (int k = m->nb - 1; k >= 0; k--)
        if ((rc = MPI_Wait(&m->b[k].req[1], MPI_STATUS_IGNORE)) != MPI_SUCCESS)
            return mpi_fail(m, rc, "Iallgatherv", err);
    return ME_OK;
}

static void d_close(void *impl) {
    mpi_dist *m = impl;
    if (m) {
        MPI_Comm_free(&m->comm);
        free(m->b), free(m->recv), free(m->counts);
        free(m);
    }
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

static const me_dist_ops ops = {d_allgather, d_bcast, d_grad_begin, d_grad_ready, d_grad_finish, d_close};

/* The plugin's one export (ME_DIST_PLUGIN_ENTRY). */
__attribute__((visibility("default"))) me_status me_dist_mpi_open(me_dist *d, me_error *err);

me_status me_dist_mpi_open(me_dist *d, me_error *err) {
    int provided, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided); /* only the main thread calls MPI */
    if (rc != MPI_SUCCESS) return me_error_set(err, ME_ERR_IO, "MPI_Init_thread failed (error %d)", rc);
    mpi_dist *m = calloc(1, sizeof *m);
    if (!m) {
        MPI_Finalize();
        return me_error_set(err, ME_ERR_NOMEM, "out of memory starting MPI");
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
    /* errors come back as codes (reported as one line) instead of aborting the job with MPI's own text */
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(m->comm, &m->rank);
    MPI_Comm_size(m->comm, &m->size);
    MPI_Comm node;
    int local_rank = 0, local_size = 1;
    if (MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, m->rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &local_rank);
        MPI_Comm_size(node, &local_size);
        MPI_Comm_free(&node);
    }
    size_t bytes = DEFAULT_BUCKET_BYTES;
    const char *env = getenv("MINIENC_DIST_BUCKET_MB");
    if (env && *env) {
        char *end;
        double mb = strtod(env, &end);
        if (*end || !(mb >= 0.0) || mb > 1024.0) {
            me_status st = me_error_set(err, ME_ERR_USAGE, "MINIENC_DIST_BUCKET_MB='%s': expected a size in MiB "
                                        "from 0 (one bucket) to 1024", env);
            d_close(m);
            return st;
        }
        bytes = (size_t)(mb * 1048576.0);
    }
    m->bucket_floats = bytes / sizeof(float);
    d->rank = m->rank;
    d->size = m->size;
    d->local_rank = local_rank;
    d->local_size = local_size;
    d->ops = &ops;
    d->impl = m;
    return ME_OK;
}
