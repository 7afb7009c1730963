/* A long-running program for the running-snapshot tests (issue 16): it
 * holds exactly what it is told to and waits on its standard input.
 *
 * Commands, one a line; each is answered "ok <blocks> <bytes>\n" (what
 * the program holds through `hold`, after the command):
 *   hold N SIZE   allocate N blocks of SIZE bytes (in hold_blocks) and keep them
 *   grow N SIZE   the same from another function (grow_blocks): a second site
 *   free          free every held block
 *   churn MS      malloc/free in a loop for MS milliseconds (events, no growth)
 *   quit          exit 0
 * It prints "ready <pid>\n" first, once stdout's buffer exists. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void **held;
static size_t nheld, capheld;
static size_t held_bytes;

static void keep(void *p, size_t size) {
    if (nheld == capheld) {
        capheld = capheld ? capheld * 2 : 1024;
        /* The pointer table itself is not counted in what the program
         * says it holds: it is allocated before the first snapshot. */
        held = realloc(held, capheld * sizeof *held);
    }
    held[nheld++] = p;
    held_bytes += size;
}

__attribute__((noinline)) static void hold_blocks(long n, size_t size) {
    for (long i = 0; i < n; i++) keep(malloc(size), size);
}

__attribute__((noinline)) static void grow_blocks(long n, size_t size) {
    for (long i = 0; i < n; i++) keep(malloc(size), size);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(void) {
    char line[256];
    capheld = 1 << 16;
    held = malloc(capheld * sizeof *held);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        long n = 0, size = 0;
        if (sscanf(line, "hold %ld %ld", &n, &size) == 2) {
            hold_blocks(n, size);
        } else if (sscanf(line, "grow %ld %ld", &n, &size) == 2) {
            grow_blocks(n, size);
        } else if (strncmp(line, "free", 4) == 0) {
            for (size_t i = 0; i < nheld; i++) free(held[i]);
            nheld = 0;
            held_bytes = 0;
        } else if (sscanf(line, "churn %ld", &n) == 1) {
            double end = now_ms() + n;
            while (now_ms() < end)
                for (int i = 0; i < 1000; i++) free(malloc(32 + i % 64));
        } else if (strncmp(line, "quit", 4) == 0) {
            return 0;
        }
        printf("ok %zu %zu\n", nheld, held_bytes);
        fflush(stdout);
    }
    return 0;
}
