/* Calls every interposed allocator entry point a known number of times.
 * Program-made totals (the per-line comments add up to them):
 *   allocations 21 (20 with "no-pvalloc"), reallocs 2, frees 19 (18),
 *   bytes 1234 (1134), freed 1147 (1047), live at exit 2 blocks / 87 bytes.
 * It never uses stdio, so libc allocates nothing on its behalf. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile sink;

int main(int argc, char **argv) {
    int with_pvalloc = !(argc > 1 && strcmp(argv[1], "no-pvalloc") == 0);
    void *m[10];
    for (int i = 0; i < 10; i++) m[i] = malloc(i + 1);           /* 10 blocks, 55 B */
    for (int i = 0; i < 9; i++) free(m[i]);                      /* 9 frees, 45 B; m[9] leaks */
    free(malloc(0));                                             /* 1 block, 0 B, freed */
    free(calloc(4, 25));                                         /* 100 B, freed */
    void *r = realloc(NULL, 64);                                 /* an allocation: 64 B */
    r = realloc(r, 128);                                         /* realloc: +128, freed 64 */
    sink = realloc(r, 0);                                        /* a free of 128 B */
    void *ra = reallocarray(NULL, 3, 10);                        /* allocation: 30 B */
    ra = reallocarray(ra, 6, 10);                                /* realloc: +60, freed 30 */
    free(ra);                                                    /* freed 60 */
    void *pm = NULL;
    if (posix_memalign(&pm, 64, 200) != 0) abort();              /* 200 B */
    free(pm);
    free(aligned_alloc(128, 256));                               /* 256 B */
    free(memalign(32, 48));                                      /* 48 B */
    free(valloc(100));                                           /* 100 B */
    if (with_pvalloc) free(pvalloc(100));                        /* 100 B (DHAT aborts on it) */
    free(NULL);
    free(NULL);
    free(NULL);                                                  /* count nowhere */
    void *big = malloc(16);                                      /* 16 B ... */
    sink = realloc(big, SIZE_MAX / 2);                           /* ... failed realloc: nothing */
    free(big);                                                   /* ... freed, 16 B */
    sink = malloc(SIZE_MAX / 2);                                 /* fails: nothing */
    sink = calloc(SIZE_MAX / 2, 4);                              /* overflows: nothing */
    sink = calloc(1, 77);                                        /* 77 B, leaks */
    sink = m[9];
    return 0;
}
