/* espresso [ROUNDS]: the allocation pattern of espresso (two-level logic
 * minimisation): sets of cubes, each cube a bit vector whose length depends
 * on the problem, each set an array that grows and shrinks by realloc. A
 * round takes a problem of 2..64 words a cube, builds two covers of random
 * cubes, intersects every pair (a new cube each, kept when non-empty), drops
 * the cubes another one contains, and frees it all: blocks of mixed sizes
 * (16 B to 512 B cubes, arrays from 32 B to tens of KiB) and many reallocs. */
#include "bench.h"

typedef struct {
    size_t n, cap, words;
    uint64_t **cube;
} cover;

static cover *cover_new(size_t words) {
    cover *c = malloc(sizeof *c);
    if (!c) { perror("malloc"); exit(1); }
    c->n = 0;
    c->cap = 4;
    c->words = words;
    c->cube = malloc(c->cap * sizeof *c->cube);
    if (!c->cube) { perror("malloc"); exit(1); }
    return c;
}

static void cover_add(cover *c, uint64_t *cube) {
    if (c->n == c->cap) {
        c->cap += c->cap / 2 + 1;
        uint64_t **grown = realloc(c->cube, c->cap * sizeof *c->cube);
        if (!grown) { perror("realloc"); exit(1); }
        c->cube = grown;
    }
    c->cube[c->n++] = cube;
}

static void cover_free(cover *c) {
    for (size_t i = 0; i < c->n; i++) xfree(c->cube[i], c->words * 8);
    free(c->cube);
    free(c);
}

/* A cube of random literals: two bits per variable, 01 / 10 / 11. */
static uint64_t *random_cube(rng_t *r, size_t words) {
    uint64_t *q = xmalloc(words * 8);
    for (size_t w = 1; w + 1 < words; w++) {
        uint64_t x = rng_next(r);
        q[w] = x | (x >> 1 & 0x5555555555555555ULL) | (~x << 1 & 0xAAAAAAAAAAAAAAAAULL);
    }
    return q;
}

/* The variables of a cube (outside its stamped first and last words) are
 * empty when some variable has neither bit. */
static int empty(const uint64_t *q, size_t words) {
    for (size_t w = 1; w + 1 < words; w++) {
        uint64_t v = q[w];
        if (~(v | v >> 1) & 0x5555555555555555ULL) return 1;
    }
    return 0;
}

static int contains(const uint64_t *a, const uint64_t *b, size_t words) {
    for (size_t w = 1; w + 1 < words; w++)
        if (b[w] & ~a[w]) return 0;
    return 1;
}

int main(int argc, char **argv) {
    long rounds = arg(argc, argv, 1, 10000);
    rng_t r = rng_new(5);
    uint64_t kept = 0;
    for (long k = 0; k < rounds; k++) {
        size_t words = 2 + rng_below(&r, 63);
        cover *f = cover_new(words), *g = cover_new(words), *h = cover_new(words);
        size_t nf = 8 + rng_below(&r, 56), ng = 8 + rng_below(&r, 56);
        for (size_t i = 0; i < nf; i++) cover_add(f, random_cube(&r, words));
        for (size_t i = 0; i < ng; i++) cover_add(g, random_cube(&r, words));
        for (size_t i = 0; i < f->n; i++) {
            for (size_t j = 0; j < g->n; j++) {
                uint64_t *q = xmalloc(words * 8);
                for (size_t w = 1; w + 1 < words; w++)
                    q[w] = f->cube[i][w] & g->cube[j][w];
                /* Random cubes of many variables rarely meet: keep the
                 * narrow problems' results and a share of the others. */
                if (empty(q, words) && (words > 4 || (i + j) % 3)) xfree(q, words * 8);
                else cover_add(h, q);
            }
        }
        /* Drop contained cubes, compacting in place, then shrink. */
        size_t n = 0;
        for (size_t i = 0; i < h->n; i++) {
            int dropped = 0;
            for (size_t j = 0; j < n && !dropped; j++)
                dropped = contains(h->cube[j], h->cube[i], words);
            if (dropped) xfree(h->cube[i], words * 8);
            else h->cube[n++] = h->cube[i];
        }
        h->n = n;
        if (n) {
            uint64_t **shrunk = realloc(h->cube, n * sizeof *h->cube);
            if (shrunk) { h->cube = shrunk; h->cap = n; }
        }
        kept += n;
        cover_free(f);
        cover_free(g);
        cover_free(h);
    }
    printf("%lu cubes kept\n", (unsigned long)kept);
    return 0;
}
