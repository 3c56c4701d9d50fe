/* Products too small for a BLAS call to pay off (private to ops.c). */
#ifndef MINIENC_SMALL_MATMUL_H
#define MINIENC_SMALL_MATMUL_H

#define ME_SMALL_MAX_K 256          /* K at most */
#define ME_SMALL_MAX_A (256 * 256)  /* floats of op(A) at most: 256 KiB, in a core's L2 cache */
#define ME_SMALL_PACK (64 * 64)     /* floats of the stack buffer for a panel of op(B): 16 KiB */
#define ME_SMALL_TN 16              /* columns of a tile */
/* op(B) of at most this many rows, not transposed, N a multiple of ME_SMALL_TN, is read in place: so few
 * rows cannot crowd the L1 cache's sets (small_matmul.c), and laying them out cost a fifth of a
 * 16 x 16 x 16 product's time (a toy model's per-head products) */
#define ME_SMALL_INPLACE_K 16

/* Whether me_small_matmul takes this product: K from 1 to ME_SMALL_MAX_K (K rows of one tile of op(B)
 * then fit the buffer; K = 0, C = beta C, is sgemm's) and op(A) at most ME_SMALL_MAX_A, so that it
 * stays in the core's cache while every panel of op(B) passes it. me_matmul sends exactly these
 * products here, a thread's block at a time. */
static inline int me_small_matmul_fits(int m, int k) {
    return k >= 1 && k <= ME_SMALL_MAX_K && (long)m * k <= ME_SMALL_MAX_A;
}
_Static_assert(ME_SMALL_MAX_K * ME_SMALL_TN <= ME_SMALL_PACK, "K rows of one tile must fit the buffer");

/* C[M,N] = alpha * op(A) op(B) (+ bias[N] on every row, NULL: none) + beta * C, the arguments of
 * cblas_sgemm (row-major) and a bias; with beta 0, C is only written. Single-threaded, no allocation:
 * op(B) is laid out a panel at a time in a buffer on the stack, or read in place when it is not
 * transposed, has at most ME_SMALL_INPLACE_K rows and N is a multiple of ME_SMALL_TN (above). C must not
 * overlap A or B. Only for products me_small_matmul_fits. */
void me_small_matmul(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, const float *bias, float *c, int ldc);

#endif
