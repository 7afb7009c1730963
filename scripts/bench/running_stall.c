/* Workload of scripts/bench/running_snapshot.py (issue 16): a process with
 * LIVE blocks live from SITES distinct call stacks, and BUSY threads that
 * malloc/free in a loop and note the longest time one iteration of theirs
 * took — the longest stall a running snapshot (or anything else) caused.
 *
 * Usage: running_stall LIVE SITES BUSY. Prints "ready <pid>"; then each
 * line on stdin is answered:
 *   reset  -> "ok"           (forget the longest stall so far)
 *   stall  -> "<max ns> <iterations>" (since the last reset)
 *   rss    -> "<VmRSS bytes>"
 *   quit   -> frees everything and exits
 *   leave  -> exits holding the blocks (they end live in the final snapshot) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEPTH 14 /* 2^14 = 16384 >= SITES distinct stacks */

/* Each level calls the next from one of two call instructions, chosen by
 * a bit of `code`: every code is a distinct stack. */
__attribute__((noinline)) static void *alloc_at(int d, unsigned code, size_t size) {
    if (d == 0) return malloc(size);
    if (code & 1) return alloc_at(d - 1, code >> 1, size);
    return alloc_at(d - 1, code >> 1, size);
}

static _Atomic long long max_ns;
static _Atomic long long iterations;
static _Atomic int stop;

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *busy(void *arg) {
    (void)arg;
    long long last = now_ns();
    while (!atomic_load(&stop)) {
        for (int i = 0; i < 16; i++) free(malloc(24 + i * 8));
        long long t = now_ns();
        long long d = t - last;
        last = t;
        if (d > atomic_load(&max_ns)) atomic_store(&max_ns, d);
        atomic_fetch_add(&iterations, 1);
    }
    return NULL;
}

int main(int argc, char **argv) {
    long live = argc > 1 ? atol(argv[1]) : 1000000;
    long sites = argc > 2 ? atol(argv[2]) : 10000;
    int nbusy = argc > 3 ? atoi(argv[3]) : 1;
    void **keep = malloc(live * sizeof *keep);
    for (long i = 0; i < live; i++) keep[i] = alloc_at(DEPTH, (unsigned)(i % sites), 16 + i % 64);
    pthread_t t[16];
    for (int i = 0; i < nbusy && i < 16; i++) pthread_create(&t[i], NULL, busy, NULL);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "reset", 5) == 0) {
            atomic_store(&max_ns, 0);
            atomic_store(&iterations, 0);
            printf("ok\n");
        } else if (strncmp(line, "stall", 5) == 0) {
            printf("%lld %lld\n", atomic_load(&max_ns), atomic_load(&iterations));
        } else if (strncmp(line, "rss", 3) == 0) {
            long pages = 0, rss = 0;
            FILE *f = fopen("/proc/self/statm", "r");
            if (f && fscanf(f, "%ld %ld", &pages, &rss) == 2) printf("%ld\n", rss * sysconf(_SC_PAGESIZE));
            else printf("0\n");
            if (f) fclose(f);
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        } else if (strncmp(line, "leave", 5) == 0) {
            fflush(stdout);
            exit(0);
        }
        fflush(stdout);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < nbusy && i < 16; i++) pthread_join(t[i], NULL);
    for (long i = 0; i < live; i++) free(keep[i]);
    free(keep);
    return 0;
}
