/* Threads on the smallest stacks glibc allows (PTHREAD_STACK_MIN, 16 KiB)
 * allocate, fork and end the process, as a program with many small
 * threads may.
 * usage: small_stacks THREADS ITERS
 * Each thread allocates ITERS blocks of 16 + i % 300 bytes and frees the
 * even-numbered ones. Thread 0 then forks twice, one child after the
 * other (the second fork takes what the first child found back into the
 * parent's tables, on this thread's stack): each child allocates and frees
 * one 10-byte block and leaves with _exit(5); the thread prints
 * "child <status>" for each. Once every thread is joined, one more small thread
 * prints "bye" and calls exit(7) itself.
 * Program-made totals: THREADS*ITERS allocations, THREADS*ceil(ITERS/2)
 * frees. Exits 3 if a thread cannot be started. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXT 16
#define STACK 16384
static long iters;

static void *worker(void *arg) {
    static void *kept[MAXT][512];
    int t = (int)(intptr_t)arg;
    for (long i = 0; i < iters; i++) {
        void *p = malloc(16 + i % 300);
        if (i % 2 == 0)
            free(p);
        else
            kept[t][(i / 2) % 512] = p;
    }
    for (int k = 0; t == 0 && k < 2; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            void *q = malloc(10);
            free(q);
            _exit(5);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        printf("child %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        fflush(stdout);
    }
    return NULL;
}

static void *ender(void *arg) {
    (void)arg;
    printf("bye\n");
    exit(7);
}

static int start(pthread_t *th, void *(*f)(void *), void *arg) {
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, STACK);
    int e = pthread_create(th, &at, f, arg);
    pthread_attr_destroy(&at);
    if (e != 0) {
        fprintf(stderr, "pthread_create with a %d-byte stack: error %d\n", STACK, e);
        exit(3);
    }
    return 0;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    iters = argc > 2 ? atol(argv[2]) : 1000;
    if (n < 1 || n > MAXT) return 2;
    pthread_t th[MAXT], last;
    for (int t = 0; t < n; t++) start(&th[t], worker, (void *)(intptr_t)t);
    for (int t = 0; t < n; t++) pthread_join(th[t], NULL);
    start(&last, ender, NULL);
    pthread_join(last, NULL);
    return 0;
}
