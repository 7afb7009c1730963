/* big_heap.c - a program with a large live heap: N blocks stay live while
 * random ones are freed and replaced (deterministic xorshift), so every free
 * looks up a block the tracer saw long ago. Tracers keep a table of live
 * blocks; once it is larger than the cache, its lookups wait on memory.
 * usage: big_heap [LIVE_BLOCKS=500000] [REPLACEMENTS=2000000]
 * Prints a checksum of the addresses' low bits (so nothing is optimized out). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 500000;
    long iters = argc > 2 ? atol(argv[2]) : 2000000;
    if (n < 1) n = 1;
    void **live = calloc(n, sizeof(void *));
    uint64_t r = 88172645463325252ull, sum = 0;
    for (long i = 0; i < n; i++) live[i] = malloc(16 + i % 100);
    for (long i = 0; i < iters; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        long k = (long)(r % (uint64_t)n);
        free(live[k]);
        live[k] = malloc(16 + (r >> 40) % 200);
        sum += (uintptr_t)live[k] & 0xff;
    }
    for (long i = 0; i < n; i++) free(live[i]);
    free(live);
    printf("checksum=%lu\n", (unsigned long)sum);
    return 0;
}
