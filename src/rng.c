#include "minienc/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) { return me_rng_mix64(*x += ME_RNG_GAMMA); }

void me_rng_seed(me_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t me_rng_next(me_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float me_rng_uniform(me_rng *r) { return (float)(me_rng_next(r) >> 40) * (1.0f / 16777216.0f); }

uint64_t me_rng_below(me_rng *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = me_rng_next(r);
    while (x >= limit);
    return x % n;
}

float me_rng_normal(me_rng *r) {
    /* u1 in (0, 1] so that log(u1) is finite */
    double u1 = ((double)(me_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(me_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
