/* GCC vector types (also understood by clang) for the kernels compiled per CPU kind (ME_TARGET_CLONES):
 * each clone lowers them to its target's registers (8 floats: one AVX register, two SSE ones; the AVX-512
 * clone keeps them 256 bits wide). Private to src/. */
#ifndef MINIENC_VEC_H
#define MINIENC_VEC_H

#include <stdint.h>

#define ME_VW 8 /* floats in one vector: an AVX register */
typedef float me_vec __attribute__((vector_size(ME_VW * sizeof(float))));
typedef int32_t me_ivec __attribute__((vector_size(ME_VW * sizeof(int32_t)))); /* lane masks: -1 or 0 */

/* The same vector at any float's address: loads through it need no alignment, and may alias floats */
typedef float me_uvec __attribute__((vector_size(ME_VW * sizeof(float)), aligned(sizeof(float)), may_alias));

/* v = the ME_VW floats at p (unaligned); a macro, since a function returning a vector type warns about
 * the ABI of targets without AVX */
#define ME_LOAD(v, p) ((v) = *(const me_uvec *)(p))

/* mask ? a : b, lane by lane (C has no ?: on vectors); a macro for the reason above */
#define ME_SELECT(mask, a, b) ((me_vec)(((mask) & (me_ivec)(a)) | (~(mask) & (me_ivec)(b))))

#endif
