/* cfrac [STEPS]: the allocation pattern of cfrac (factoring by continued
 * fractions): multi-precision integers that are values, never changed in
 * place, so every operation returns a freshly allocated result and its
 * operands mostly die at once. A step extends a convergent's numerator
 * (A = a * A1 + A0), squares it, and tries to divide the square by a
 * factor base of small primes, each trial division a new quotient that is
 * freed unless it divided evenly. Numbers stay within 16 words (results are
 * kept modulo 2^512), so blocks are 8 to 72 bytes. */
#include "bench.h"

enum { MAXW = 16 };
typedef struct { uint32_t n; uint32_t d[]; } big;

static big *big_new(uint32_t n) {
    big *b = malloc(sizeof *b + (n ? n : 1) * sizeof b->d[0]);
    if (!b) { perror("malloc"); exit(1); }
    b->n = n;
    return b;
}

/* Drops leading zero words. */
static big *trim(big *b) {
    while (b->n && !b->d[b->n - 1]) b->n--;
    return b;
}

static big *big_small(uint32_t v) {
    big *b = big_new(1);
    b->d[0] = v;
    return trim(b);
}

/* a + b, modulo 2^(32 MAXW). */
static big *big_add(const big *a, const big *b) {
    uint32_t n = (a->n > b->n ? a->n : b->n) + 1;
    if (n > MAXW) n = MAXW;
    big *c = big_new(n);
    uint64_t carry = 0;
    for (uint32_t i = 0; i < n; i++) {
        carry += (uint64_t)(i < a->n ? a->d[i] : 0) + (i < b->n ? b->d[i] : 0);
        c->d[i] = (uint32_t)carry;
        carry >>= 32;
    }
    return trim(c);
}

/* a * k, modulo 2^(32 MAXW). */
static big *big_mul_small(const big *a, uint32_t k) {
    uint32_t n = a->n + 1 > MAXW ? MAXW : a->n + 1;
    big *c = big_new(n);
    uint64_t carry = 0;
    for (uint32_t i = 0; i < n; i++) {
        carry += (uint64_t)(i < a->n ? a->d[i] : 0) * k;
        c->d[i] = (uint32_t)carry;
        carry >>= 32;
    }
    return trim(c);
}

/* a * b, modulo 2^(32 MAXW). */
static big *big_mul(const big *a, const big *b) {
    uint32_t n = a->n + b->n > MAXW ? MAXW : a->n + b->n;
    big *c = big_new(n);
    memset(c->d, 0, n * sizeof c->d[0]);
    for (uint32_t i = 0; i < a->n && i < n; i++) {
        uint64_t carry = 0;
        for (uint32_t j = 0; i + j < n; j++) {
            carry += (uint64_t)a->d[i] * (j < b->n ? b->d[j] : 0) + c->d[i + j];
            c->d[i + j] = (uint32_t)carry;
            carry >>= 32;
        }
    }
    return trim(c);
}

/* a / k, with the remainder in *rem. */
static big *big_div_small(const big *a, uint32_t k, uint32_t *rem) {
    big *q = big_new(a->n);
    uint64_t r = 0;
    for (uint32_t i = a->n; i-- > 0;) {
        r = r << 32 | a->d[i];
        q->d[i] = (uint32_t)(r / k);
        r %= k;
    }
    *rem = (uint32_t)r;
    return trim(q);
}

static const uint32_t primes[] = { 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43,
                                   47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97 };

int main(int argc, char **argv) {
    long steps = arg(argc, argv, 1, 400000);
    rng_t r = rng_new(3);
    big *a0 = big_small(1), *a1 = big_small(7);
    uint64_t smooth = 0;
    for (long s = 0; s < steps; s++) {
        big *t = big_mul_small(a1, 1 + (uint32_t)rng_below(&r, 200));
        big *a = big_add(t, a0);
        free(t);
        free(a0);
        a0 = a1;
        a1 = a;
        big *q = big_mul(a1, a1);
        for (size_t p = 0; p < sizeof primes / sizeof primes[0]; p++) {
            for (;;) {
                uint32_t rem;
                big *d = big_div_small(q, primes[p], &rem);
                if (rem || !d->n) { free(d); break; }
                free(q);
                q = d;
            }
        }
        smooth += q->n <= 1;
        free(q);
    }
    free(a0);
    free(a1);
    printf("%lu smooth\n", (unsigned long)smooth);
    return 0;
}
