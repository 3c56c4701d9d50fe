/* Products too small for a BLAS call to pay off (private to ops.c). */
#ifndef MINIENC_SMALL_MATMUL_H
#define MINIENC_SMALL_MATMUL_H

/* At most this many multiply-adds (m * n * k) and, when B is transposed, k * n <= ME_SMALL_PACK:
 * me_matmul sends such products here. */
#define ME_SMALL_MAX_MAC (64 * 64 * 64)
#define ME_SMALL_PACK (64 * 64)

/* C[M,N] = alpha * op(A) op(B) + beta * C, the arguments of cblas_sgemm (row-major); with beta 0, C is
 * only written. Single-threaded, no allocation (op(B) transposed goes to a buffer on the stack). */
void me_small_matmul(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc);

#endif
