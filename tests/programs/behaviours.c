/* Small behaviours the output tests need.
 *   chdir DIR      allocates, then chdir(DIR) before exiting
 *   sleep MS       a 4242-byte block lives MS milliseconds, then is freed
 *   many-live N    leaks N blocks of 24 bytes
 *   rmdir DIR      allocates, then removes the (empty) directory DIR */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *volatile sink;

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    if (!strcmp(argv[1], "chdir")) {
        sink = malloc(10);
        return chdir(argv[2]) == 0 ? 0 : 3;
    }
    if (!strcmp(argv[1], "sleep")) {
        long ms = atol(argv[2]);
        void *p = malloc(4242);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        free(p);
        return 0;
    }
    if (!strcmp(argv[1], "rmdir")) {
        sink = malloc(10);
        return rmdir(argv[2]) == 0 ? 0 : 3;
    }
    if (!strcmp(argv[1], "many-live")) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) sink = malloc(24);
        return 0;
    }
    return 2;
}
