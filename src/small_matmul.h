/* Products too small for a BLAS call to pay off (private to ops.c). */
#ifndef MINIENC_SMALL_MATMUL_H
#define MINIENC_SMALL_MATMUL_H

#define ME_SMALL_MAX_MAC (64 * 64 * 64) /* m * n * k at most */
#define ME_SMALL_PACK (64 * 64)         /* floats of the stack buffer for op(B) */
#define ME_SMALL_TN 16                  /* columns of a tile */

/* Whether me_small_matmul takes this product: at most ME_SMALL_MAX_MAC multiply-adds, and when op(B)
 * must be laid out first (B transposed, or N not a multiple of ME_SMALL_TN) its K x N rounded up to
 * ME_SMALL_TN columns fits the stack buffer. me_matmul sends exactly these products here. */
static inline int me_small_matmul_fits(int trans_b, int m, int n, int k) {
    long npad = ((long)n + ME_SMALL_TN - 1) / ME_SMALL_TN * ME_SMALL_TN;
    if ((long)m * n * k > ME_SMALL_MAX_MAC) return 0;
    return (!trans_b && n % ME_SMALL_TN == 0) || (long)k * npad <= ME_SMALL_PACK;
}

/* C[M,N] = alpha * op(A) op(B) + beta * C, the arguments of cblas_sgemm (row-major); with beta 0, C is
 * only written. Single-threaded, no allocation (op(B) transposed, or of a width that is not a multiple
 * of ME_SMALL_TN, is laid out in a buffer on the stack). Only for products me_small_matmul_fits. */
void me_small_matmul(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc);

#endif
