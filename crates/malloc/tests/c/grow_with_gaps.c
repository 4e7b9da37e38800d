/* Large blocks that grow by realloc while other large blocks come and go:
 * grows four buffers, taking turns, from 4 KiB to past `max_mib` MiB each
 * (default 8) by a factor `f` (default 1.25), writing every new byte with a
 * pattern that depends on the buffer and the offset, and after each step
 * checks that every old byte of that buffer survived the move. Between two
 * steps it mallocs a `gap_mib` MiB block (default 3), fills it and frees
 * it, so the address space around the buffers keeps changing and a block
 * that was moved wrongly (pages lost, shared or left behind) shows up as a
 * mismatch. Exits 1 on the first mismatch or failed allocation, 0 otherwise.
 *
 *   cc -O1 -fno-builtin crates/malloc/tests/c/grow_with_gaps.c -o grow_with_gaps
 *   LD_PRELOAD=$PWD/target/debug/libstrata_malloc.so ./grow_with_gaps [max_mib f gap_mib]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUF 4

/* The byte expected at offset i of buffer b: differs between buffers and
 * between pages, so a page that lands in the wrong place or the wrong
 * buffer does not match. */
static unsigned char pattern(int b, size_t i) {
  return (unsigned char)(i * 131u + (i >> 12) * 7u + (unsigned)b * 61u + 1u);
}

static void fill(unsigned char *p, int b, size_t from, size_t to) {
  for (size_t i = from; i < to; i++) p[i] = pattern(b, i);
}

/* Returns the first offset below n whose byte is wrong, or n. */
static size_t check(const unsigned char *p, int b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != pattern(b, i)) return i;
  return n;
}

int main(int argc, char **argv) {
  size_t max = (size_t)(argc > 1 ? atol(argv[1]) : 8) << 20;
  double f = argc > 2 ? atof(argv[2]) : 1.25;
  size_t gap = (size_t)(argc > 3 ? atol(argv[3]) : 3) << 20;
  if (f <= 1.0 || max == 0) {
    fprintf(stderr, "usage: grow_with_gaps [max_mib > 0] [factor > 1] [gap_mib]\n");
    return 2;
  }

  unsigned char *buf[NBUF];
  size_t len[NBUF];
  for (int b = 0; b < NBUF; b++) {
    len[b] = 4096;
    buf[b] = malloc(len[b]);
    if (!buf[b]) {
      fprintf(stderr, "grow_with_gaps: malloc(%zu) failed\n", len[b]);
      return 1;
    }
    fill(buf[b], b, 0, len[b]);
  }

  long steps = 0, moves = 0;
  for (int done = 0; done < NBUF;) {
    done = 0;
    for (int b = 0; b < NBUF; b++) {
      if (len[b] > max) {
        done++;
        continue;
      }
      size_t n = len[b], m = (size_t)((double)n * f);
      unsigned char *q = realloc(buf[b], m);
      if (!q) {
        fprintf(stderr, "grow_with_gaps: realloc(buffer %d, %zu) failed\n", b, m);
        return 1;
      }
      moves += q != buf[b];
      buf[b] = q;
      size_t bad = check(q, b, n);
      if (bad != n) {
        fprintf(stderr,
                "grow_with_gaps: buffer %d grown %zu -> %zu bytes: byte %zu is %#x, "
                "expected %#x\n",
                b, n, m, bad, q[bad], pattern(b, bad));
        return 1;
      }
      fill(q, b, n, m);
      len[b] = m;
      steps++;

      if (gap) {
        unsigned char *g = malloc(gap);
        if (!g) {
          fprintf(stderr, "grow_with_gaps: malloc(%zu) failed\n", gap);
          return 1;
        }
        memset(g, 0xA5, gap);
        free(g);
      }
    }
  }

  /* A last look at every buffer, after all the others moved around it. */
  for (int b = 0; b < NBUF; b++) {
    size_t bad = check(buf[b], b, len[b]);
    if (bad != len[b]) {
      fprintf(stderr, "grow_with_gaps: buffer %d (%zu bytes): byte %zu is %#x, expected %#x\n",
              b, len[b], bad, buf[b][bad], pattern(b, bad));
      return 1;
    }
    free(buf[b]);
  }
  printf("grow_with_gaps: OK, %d buffers grown past %zu MiB by %.2fx in %ld steps "
         "(%ld moved), %zu MiB gap block between steps\n",
         NBUF, max >> 20, f, steps, moves, gap >> 20);
  return 0;
}
