/* The program memscope-cli's tests run. No stdio (write(2) only), so its
 * heap counts are exactly what each mode does.
 *   alloc N SIZE LEAK CODE  N blocks of SIZE bytes live at once, all but
 *                           LEAK freed, then exit(CODE)
 *   wait                    counts SIGINT/SIGTERM/SIGHUP with a handler; after
 *                           the first, waits 300 ms more (to see duplicates)
 *                           and exits with 10 + the count
 *   pause                   default dispositions: dies of whatever arrives
 *   kill9                   SIGKILLs itself
 *   thread-name NAME        names its thread NAME, then allocates
 * "ready\n" goes to stdout once the blocks are allocated. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t received;
static void *volatile keep[5];

static void on_signal(int sig) {
    (void)sig;
    received++;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void ready(void) {
    for (int i = 0; i < 5; i++) keep[i] = malloc(1000);
    (void)!write(1, "ready\n", 6);
}

int main(int argc, char **argv) {
    if (argc >= 6 && !strcmp(argv[1], "alloc")) {
        long n = atol(argv[2]), size = atol(argv[3]), leak = atol(argv[4]);
        void **blocks = malloc(n * sizeof *blocks);
        for (long i = 0; i < n; i++) blocks[i] = malloc(size);
        for (long i = leak; i < n; i++) free(blocks[i]);
        free(blocks);
        return atoi(argv[5]);
    }
    if (argc >= 2 && !strcmp(argv[1], "wait")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        ready();
        while (!received) sleep_ms(5);
        sleep_ms(300);
        return 10 + received;
    }
    if (argc >= 2 && !strcmp(argv[1], "pause")) {
        ready();
        for (;;) pause();
    }
    if (argc >= 2 && !strcmp(argv[1], "kill9")) {
        ready();
        raise(SIGKILL);
    }
    if (argc >= 3 && !strcmp(argv[1], "thread-name")) {
        prctl(PR_SET_NAME, argv[2]);
        ready();
        return 0;
    }
    return 2;
}
