/* Copied from the project's shared speed yardstick (shared/bench/alloc_bench.c). */
/* alloc_bench.c - deterministic malloc-heavy benchmark for interposer overhead.
 *
 * usage: alloc_bench [THREADS=1] [ITERS_PER_THREAD=20000000] [SEED=42]
 *
 * Each thread runs ITERS iterations; per iteration one operation is drawn from a
 * fixed-seed xorshift64 stream (seed ^ thread id), so counts are deterministic:
 *   55%  small malloc/free pair (8..256 B), touched
 *   10%  realloc growth chain: malloc(16) then 6 x realloc doubling, free
 *   10%  calloc(n, 16), n in 1..64, free
 *    5%  posix_memalign(align 16..4096, 64..1024 B), free
 *   15%  long-lived: replace a random slot in a 4096-entry table (free old, malloc new)
 *    5%  medium-lived: push into a 64-entry ring (frees the entry 64 pushes old)
 * At the end everything is freed (no leaks). Prints total allocation calls and
 * this process's own peak RSS (getrusage RUSAGE_SELF).
 * Build: gcc -O2 -pthread -o alloc_bench alloc_bench.c
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define SLOTS 4096
#define RING 64

struct stats {
    uint64_t mallocs, callocs, reallocs, memaligns, frees, bytes;
    uint64_t checksum;
};

struct targ {
    int tid;
    uint64_t iters;
    uint64_t seed;
    struct stats st;
};

static inline uint64_t xs64(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void *worker(void *p) {
    struct targ *a = p;
    struct stats st = {0};
    uint64_t rng = a->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(a->tid + 1));
    if (!rng) rng = 1;
    void **slots = calloc(SLOTS, sizeof(void *));
    void *ring[RING] = {0};
    unsigned ring_pos = 0;
    st.callocs++;
    st.bytes += SLOTS * sizeof(void *);

    for (uint64_t i = 0; i < a->iters; i++) {
        uint64_t r = xs64(&rng);
        unsigned op = (unsigned)(r % 100);
        uint64_t r2 = r >> 8;
        if (op < 55) {
            size_t sz = 8 + (r2 % 249);
            char *m = malloc(sz);
            m[0] = (char)i;
            m[sz - 1] = (char)sz;
            st.checksum += (unsigned char)m[0] + (unsigned char)m[sz - 1];
            free(m);
            st.mallocs++; st.frees++; st.bytes += sz;
        } else if (op < 65) {
            size_t sz = 16;
            char *m = malloc(sz);
            m[0] = 1;
            st.mallocs++; st.bytes += sz;
            for (int k = 0; k < 6; k++) {
                sz *= 2;
                m = realloc(m, sz);
                m[sz - 1] = (char)k;
                st.reallocs++; st.bytes += sz;
            }
            st.checksum += (unsigned char)m[0];
            free(m);
            st.frees++;
        } else if (op < 75) {
            size_t n = 1 + (r2 % 64);
            uint32_t *m = calloc(n, 16);
            st.checksum += m[(n * 4) - 1] + 1;
            free(m);
            st.callocs++; st.frees++; st.bytes += n * 16;
        } else if (op < 80) {
            size_t al = (size_t)16 << (r2 % 9); /* 16..4096 */
            size_t sz = 64 + ((r2 >> 4) % 961);
            void *m = NULL;
            if (posix_memalign(&m, al, sz) != 0) abort();
            ((char *)m)[0] = 3;
            st.checksum += ((uintptr_t)m & (al - 1)) == 0;
            free(m);
            st.memaligns++; st.frees++; st.bytes += sz;
        } else if (op < 95) {
            unsigned idx = (unsigned)(r2 % SLOTS);
            size_t sz = 16 + ((r2 >> 12) % 2033);
            if (slots[idx]) { free(slots[idx]); st.frees++; }
            char *m = malloc(sz);
            memset(m, (int)(i & 0xff), sz < 64 ? sz : 64);
            slots[idx] = m;
            st.mallocs++; st.bytes += sz;
        } else {
            size_t sz = 32 + (r2 % 480);
            if (ring[ring_pos]) { free(ring[ring_pos]); st.frees++; }
            char *m = malloc(sz);
            m[0] = 5;
            ring[ring_pos] = m;
            ring_pos = (ring_pos + 1) % RING;
            st.mallocs++; st.bytes += sz;
        }
    }
    for (unsigned k = 0; k < SLOTS; k++)
        if (slots[k]) { free(slots[k]); st.frees++; }
    for (unsigned k = 0; k < RING; k++)
        if (ring[k]) { free(ring[k]); st.frees++; }
    free(slots);
    st.frees++;
    a->st = st;
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    uint64_t iters = argc > 2 ? strtoull(argv[2], NULL, 10) : 20000000ull;
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 42ull;
    if (threads < 1) threads = 1;
    pthread_t th[threads];
    struct targ args[threads];
    for (int t = 0; t < threads; t++) {
        args[t] = (struct targ){.tid = t, .iters = iters, .seed = seed};
        if (pthread_create(&th[t], NULL, worker, &args[t]) != 0) abort();
    }
    struct stats tot = {0};
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        tot.mallocs += args[t].st.mallocs;
        tot.callocs += args[t].st.callocs;
        tot.reallocs += args[t].st.reallocs;
        tot.memaligns += args[t].st.memaligns;
        tot.frees += args[t].st.frees;
        tot.bytes += args[t].st.bytes;
        tot.checksum += args[t].st.checksum;
    }
    uint64_t allocs = tot.mallocs + tot.callocs + tot.memaligns;
    printf("threads=%d iters=%llu seed=%llu\n", threads, (unsigned long long)iters,
           (unsigned long long)seed);
    printf("malloc=%llu calloc=%llu realloc=%llu posix_memalign=%llu free=%llu\n",
           (unsigned long long)tot.mallocs, (unsigned long long)tot.callocs,
           (unsigned long long)tot.reallocs, (unsigned long long)tot.memaligns,
           (unsigned long long)tot.frees);
    printf("total_allocations=%llu (excl. realloc) total_alloc_calls=%llu (incl. realloc) "
           "bytes_requested=%llu checksum=%llu\n",
           (unsigned long long)allocs, (unsigned long long)(allocs + tot.reallocs),
           (unsigned long long)tot.bytes, (unsigned long long)tot.checksum);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru); /* this process only, not a profiler's helper */
    printf("self_maxrss_kib=%ld\n", ru.ru_maxrss);
    return 0;
}
