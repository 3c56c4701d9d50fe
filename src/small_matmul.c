#include "small_matmul.h"

#include "internal.h"
#include "vec.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

/* The per-head attention products of a small model (16 x 16 x 16 at d_model 64, 4 heads, 16 tokens)
 * are a few thousand multiply-adds each; through cblas_sgemm they ran at a fifth of its large-matrix
 * rate (the call's set-up and packing cost more than the arithmetic), and a toy model's thread shard
 * (256 rows, K of 64-256) ran faster here too (me_small_matmul_fits says which products come here).
 * C is computed in tiles of TM rows by TN columns held in registers: for every p, a row of op(B) (TN
 * floats, two vectors of ME_VW) is multiplied by TM broadcast values of op(A)'s column p and added to
 * the tile.
 *
 * Each element of C is alpha * (a sum over p in order 0..k-1) (+ bias) + beta * C: the order is fixed,
 * so a result depends only on the binary and the CPU, as with OpenBLAS (which also picks its kernels
 * by CPU). The tile is a GCC vector type (vector_size, also understood by clang), lowered to whatever
 * the target has; the function is compiled per CPU kind (ME_TARGET_CLONES), and -ffp-contract=fast
 * (CMakeLists.txt) lets the compiler fuse each multiply-add. */
#define TM 4
#define TN ME_SMALL_TN
_Static_assert(TN == 2 * ME_VW, "a tile row is two vectors");

/* c[r][0..cols) = alpha * acc[r] (+ bias[0..cols)) (+ beta * c) for the tile's rows */
static inline __attribute__((always_inline)) void store(float *c, int ldc, me_vec (*acc)[2], int rows, int cols,
                                                        float alpha, float beta, const float *bias) {
    me_vec bias0 = {0}, bias1 = {0};
    if (bias && cols == TN) ME_LOAD(bias0, bias), ME_LOAD(bias1, bias + ME_VW);
    for (int r = 0; r < rows; r++) {
        float *cr = c + (size_t)r * ldc;
        me_vec v0 = alpha * acc[r][0], v1 = alpha * acc[r][1];
        if (cols == TN) {
            if (bias) v0 += bias0, v1 += bias1;
            if (beta != 0.0f) {
                me_vec c0, c1;
                ME_LOAD(c0, cr), ME_LOAD(c1, cr + ME_VW);
                v0 += beta * c0, v1 += beta * c1;
            }
            memcpy(cr, &v0, sizeof v0);
            memcpy(cr + ME_VW, &v1, sizeof v1);
        } else {
            float out[TN];
            memcpy(out, &v0, sizeof v0);
            memcpy(out + ME_VW, &v1, sizeof v1);
            if (bias)
                for (int j = 0; j < cols; j++) out[j] += bias[j];
            for (int j = 0; j < cols; j++) cr[j] = beta == 0.0f ? out[j] : out[j] + beta * cr[j];
        }
    }
}

/* One tile of four rows: op(A)(r, p) = ap[r * sa_row + p * sa_p] for the tile's rows r, op(B) row p at
 * b + p * ldb (TN readable floats) */
static inline __attribute__((always_inline)) void tile4(float *c, int ldc, int cols, int k, const float *ap,
                                                        size_t sa_row, size_t sa_p, const float *b, int ldb,
                                                        float alpha, float beta, const float *bias) {
    me_vec acc[TM][2], c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
    for (int p = 0; p < k; p++, ap += sa_p, b += ldb) {
        me_vec b0, b1;
        ME_LOAD(b0, b), ME_LOAD(b1, b + ME_VW);
        float a0 = ap[0], a1 = ap[sa_row], a2 = ap[2 * sa_row], a3 = ap[3 * sa_row];
        c00 += a0 * b0, c01 += a0 * b1;
        c10 += a1 * b0, c11 += a1 * b1;
        c20 += a2 * b0, c21 += a2 * b1;
        c30 += a3 * b0, c31 += a3 * b1;
    }
    acc[0][0] = c00, acc[0][1] = c01, acc[1][0] = c10, acc[1][1] = c11;
    acc[2][0] = c20, acc[2][1] = c21, acc[3][0] = c30, acc[3][1] = c31;
    store(c, ldc, acc, TM, cols, alpha, beta, bias);
}

/* The last rows (fewer than TM) of a column of tiles */
static inline __attribute__((always_inline)) void tile_rows(float *c, int ldc, int rows, int cols, int k,
                                                            const float *ap, size_t sa_row, size_t sa_p,
                                                            const float *b, int ldb, float alpha, float beta,
                                                            const float *bias) {
    me_vec acc[TM][2];
    for (int r = 0; r < rows; r++) {
        me_vec c0 = {0}, c1 = {0};
        for (int p = 0; p < k; p++) {
            float av = ap[r * sa_row + p * sa_p];
            me_vec b0, b1;
            ME_LOAD(b0, b + (size_t)p * ldb), ME_LOAD(b1, b + (size_t)p * ldb + ME_VW);
            c0 += av * b0, c1 += av * b1;
        }
        acc[r][0] = c0, acc[r][1] = c1;
    }
    store(c, ldc, acc, rows, cols, alpha, beta, bias);
}

/* C[M, cols] (cols <= TN) = alpha * op(A) times the panel's K x TN tile column at b (row stride ldb)
 * (+ bias[cols] on every row) + beta * C: a column of tiles, top to bottom.
 * A function of its own (compiled per CPU kind, called through the loader's choice): inlined into
 * me_small_matmul's loops over panels, GCC hoisted values of those loops into vector registers for
 * their whole length and then kept one of the two op(B) vectors of the sum on the stack, storing and
 * reloading it at every step: the kernel ran at half its rate (45-50 against 80-90 GFLOP/s on 64^3
 * here), in the AVX-512 clone always and in the AVX2 one whenever the code around it changed. Here the
 * sum's ten vectors stay in registers in every clone, and a call covers a whole column of tiles. */
ME_TARGET_CLONES static __attribute__((noinline)) void tile_column(float *c, int ldc, int m, int cols, int k,
                                                                   const float *a, size_t sa_row, size_t sa_p,
                                                                   const float *b, int ldb, float alpha, float beta,
                                                                   const float *bias) {
    int m4 = m - m % TM;
    for (int i = 0; i < m4; i += TM)
        tile4(c + (size_t)i * ldc, ldc, cols, k, a + i * sa_row, sa_row, sa_p, b, ldb, alpha, beta, bias);
    if (m4 < m)
        tile_rows(c + (size_t)m4 * ldc, ldc, m - m4, cols, k, a + m4 * sa_row, sa_row, sa_p, b, ldb, alpha, beta,
                  bias);
}

/* Columns [j0, j0 + w) of op(B)[K,N] laid out row-major in buf[K, wpad], zero-padded to wpad (a multiple
 * of TN) */
static inline __attribute__((always_inline)) void pack_panel(float *buf, int trans_b, const float *b, int ldb, int k,
                                                             int j0, int w, int wpad) {
    if (trans_b) { /* B is stored [N,K]: its rows become columns of op(B), ME_VW rows at a time */
        int w8 = w - w % ME_VW, j = 0;
        for (; j < w8; j += ME_VW)
            for (int p = 0; p < k; p++) {
                me_vec col;
                for (int q = 0; q < ME_VW; q++) col[q] = b[(size_t)(j0 + j + q) * ldb + p];
                memcpy(buf + (size_t)p * wpad + j, &col, sizeof col);
            }
        for (; j < w; j++)
            for (int p = 0; p < k; p++) buf[(size_t)p * wpad + j] = b[(size_t)(j0 + j) * ldb + p];
    } else { /* whole vectors copied as such: a call to memcpy per row cost more than a short row's copy */
        int w8 = w - w % ME_VW;
        for (int p = 0; p < k; p++) {
            const float *src = b + (size_t)p * ldb + j0;
            float *dst = buf + (size_t)p * wpad;
            for (int j = 0; j < w8; j += ME_VW) {
                me_vec v;
                ME_LOAD(v, src + j);
                memcpy(dst + j, &v, sizeof v);
            }
            if (w8 < w) memcpy(dst + w8, src + w8, (size_t)(w - w8) * sizeof(float));
        }
    }
    for (int p = 0; p < k; p++)
        for (int j = w; j < wpad; j++) buf[(size_t)p * wpad + j] = 0.0f;
}

ME_TARGET_CLONES
void me_small_matmul(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, const float *bias, float *c, int ldc) {
    /* op(B)[K,N] is laid out in panels of whole tiles, as many columns as the buffer holds: a tile must
     * find TN readable columns (op(B) transposed, or N not a multiple of TN, cannot be read in place),
     * and every row of tiles reads the whole panel, whose rows in place may be a multiple of 1-2 KiB
     * apart (a head's columns of qkv at d_model 512: 6 KiB; a [K, 256] matrix: 1 KiB) and so fall into
     * the same few sets of the L1 cache and evict one another between those reads. */
    _Alignas(64) float packed[ME_SMALL_PACK];
    assert(me_small_matmul_fits(m, k));
    int npad = (n + TN - 1) / TN * TN, pw = ME_SMALL_PACK / k / TN * TN;
    if (pw > npad) pw = npad;
    size_t sa_row = trans_a ? 1 : (size_t)lda, sa_p = trans_a ? (size_t)lda : 1; /* op(A)(i,p) strides */
    int in_place = !trans_b && n % TN == 0 && k <= ME_SMALL_INPLACE_K; /* then one panel: op(B) itself */
    if (in_place) pw = n;
    for (int j0 = 0; j0 < n; j0 += pw) {
        int w = n - j0 < pw ? n - j0 : pw, wpad = (w + TN - 1) / TN * TN, ld = ldb;
        const float *panel = b + j0;
        if (!in_place) {
            pack_panel(packed, trans_b, b, ldb, k, j0, w, wpad);
            panel = packed, ld = wpad;
        }
        for (int j = 0; j < w; j += TN)
            tile_column(c + j0 + j, ldc, m, w - j < TN ? w - j : TN, k, a, sa_row, sa_p, panel + j, ld, alpha, beta,
                        bias ? bias + j0 + j : NULL);
    }
}
