/* A signal handler that forks, while the program allocates: a timer fires
 * every 2 ms, and its handler forks a child that leaves at once with
 * _exit(0), and waits for it. Single-threaded, so memscope drains its ring
 * on this very thread: some signals land while memscope's own code runs.
 * Prints "done" (and the number of forks on stderr); exits 0.
 * usage: signal_fork ITERS */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int forks;

static void on_alarm(int sig) {
    (void)sig;
    pid_t p = fork();
    if (p == 0) _exit(0);
    if (p > 0) {
        waitpid(p, NULL, 0);
        forks++;
    }
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 4000000;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = {{0, 2000}, {0, 2000}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &every, NULL);
    for (long i = 0; i < iters; i++) {
        char *p = malloc(16 + i % 700);
        p[0] = 1;
        __asm__ volatile("" ::"r"(p) : "memory");
        free(p);
    }
    setitimer(ITIMER_REAL, &off, NULL);
    printf("done\n");
    fprintf(stderr, "%d forks\n", forks);
    return 0;
}
