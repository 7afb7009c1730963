/* Ends in the way argv[1] names, after leaking one 1234-byte block (and
 * freeing a 99-byte one).
 *   return exit _exit _Exit quick_exit abort segv sigterm sigint sighup sigterm-handler
 *   sigterm-reset (installs a handler, sets SIG_DFL back, checks that the
 *   disposition reads as SIG_DFL, raises SIGTERM)
 *   thread-exit (a thread calls exit(5) while others allocate)
 *   closed-stdio FILE (closes 0-2, reopens FILE as 0-2, writes to it) */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile sink;

static void on_term(int sig) {
    (void)sig;
    static const char msg[] = "custom handler ran\n";
    if (write(1, msg, sizeof msg - 1) < 0) _exit(8);
    exit(7);
}

static void *churn(void *arg) {
    (void)arg;
    for (;;) {
        void *p = malloc(64);
        sink = p;
        free(p);
    }
    return NULL;
}

static void *exiter(void *arg) {
    (void)arg;
    usleep(20000);
    exit(5);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "return";
    sink = malloc(1234);
    free(malloc(99));
    if (!strcmp(mode, "return")) return 0;
    if (!strcmp(mode, "exit")) exit(2);
    if (!strcmp(mode, "_exit")) _exit(3);
    if (!strcmp(mode, "_Exit")) _Exit(4);
    if (!strcmp(mode, "quick_exit")) quick_exit(6);
    if (!strcmp(mode, "abort")) abort();
    if (!strcmp(mode, "segv")) {
        volatile int *p = (int *)16;
        *p = 1;
    }
    if (!strcmp(mode, "sigterm")) raise(SIGTERM);
    if (!strcmp(mode, "sigint")) raise(SIGINT);
    if (!strcmp(mode, "sighup")) kill(getpid(), SIGHUP);
    if (!strcmp(mode, "sigterm-handler")) {
        signal(SIGTERM, on_term);
        raise(SIGTERM);
    }
    if (!strcmp(mode, "sigterm-reset")) {
        signal(SIGTERM, on_term);
        struct sigaction dfl = {0}, now;
        dfl.sa_handler = SIG_DFL;
        if (sigaction(SIGTERM, &dfl, NULL) != 0) return 10;
        if (sigaction(SIGTERM, NULL, &now) != 0 || now.sa_handler != SIG_DFL) return 11;
        if (signal(SIGTERM, SIG_DFL) != SIG_DFL) return 12;
        raise(SIGTERM);
    }
    if (!strcmp(mode, "thread-exit")) {
        pthread_t t;
        for (int i = 0; i < 3; i++) pthread_create(&t, NULL, churn, NULL);
        pthread_create(&t, NULL, exiter, NULL);
        for (;;) pause();
    }
    if (!strcmp(mode, "closed-stdio") && argc > 2) {
        close(0);
        close(1);
        close(2);
        for (int i = 0; i < 3; i++)
            if (open(argv[2], O_RDWR | O_CREAT | O_APPEND, 0600) != i) return 9;
        printf("program output\n");
        fflush(stdout);
        fprintf(stderr, "program error output\n");
        return 0;
    }
    return 1;
}
