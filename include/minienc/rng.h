/* Explicit, seedable random number generator (xoshiro256** seeded through splitmix64).
 * State is a plain struct: pass it where randomness is needed, save it in checkpoints. */
#ifndef MINIENC_RNG_H
#define MINIENC_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} me_rng;

/* splitmix64's finaliser: a stateless bijective mix of z, for keys built from counters (seed, epoch;
 * the counter-based dropout masks of ops.h, per element, hence inline). */
static inline uint64_t me_rng_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* SplitMix64's increment ("golden gamma"). */
#define ME_RNG_GAMMA 0x9E3779B97F4A7C15ull

void me_rng_seed(me_rng *r, uint64_t seed);
uint64_t me_rng_next(me_rng *r);
/* Uniform in [0, 1) with 24 bits of precision. */
float me_rng_uniform(me_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t me_rng_below(me_rng *r, uint64_t n);
/* Standard normal (Box-Muller). */
float me_rng_normal(me_rng *r);

#endif
