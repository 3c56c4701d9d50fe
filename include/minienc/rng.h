/* Explicit, seedable random number generator (xoshiro256** seeded through splitmix64).
 * State is a plain struct: pass it where randomness is needed, save it in checkpoints. */
#ifndef MINIENC_RNG_H
#define MINIENC_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} me_rng;

void me_rng_seed(me_rng *r, uint64_t seed);
/* splitmix64's finaliser: a stateless bijective mix of z, for keys built from counters (seed, epoch). */
uint64_t me_rng_mix64(uint64_t z);
uint64_t me_rng_next(me_rng *r);
/* Uniform in [0, 1) with 24 bits of precision. */
float me_rng_uniform(me_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t me_rng_below(me_rng *r, uint64_t n);
/* Standard normal (Box-Muller). */
float me_rng_normal(me_rng *r);

#endif
