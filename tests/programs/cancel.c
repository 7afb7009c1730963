/* Threads cancelled while they allocate. Each round, a worker holds off
 * cancellation while the main thread asks for it, then allocates ITERS
 * blocks without reaching a cancellation point of its own, and finally
 * reaches one (pthread_testcancel), where it is cancelled. The process
 * keeps to one CPU, so memscope's collector competes with the worker for
 * it and the worker's own hooks do memscope's draining (system calls that
 * are cancellation points), as on a machine whose cores are all busy.
 * Prints "cancelled ROUNDS" and exits 0 when every worker was cancelled.
 * usage: cancel ROUNDS ITERS */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

static long iters;
static pthread_barrier_t asked;

static void *worker(void *arg) {
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    pthread_barrier_wait(&asked); /* the main thread cancels now */
    pthread_barrier_wait(&asked); /* ... and has done so */
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    for (long i = 0; i < iters; i++) {
        char *p = malloc(16 + i % 500);
        p[0] = (char)i;
        __asm__ volatile("" ::"r"(p) : "memory");
        free(p);
    }
    pthread_testcancel();
    return arg;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    iters = argc > 2 ? atol(argv[2]) : 200000;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    sched_setaffinity(0, sizeof one, &one);
    int cancelled = 0;
    for (int r = 0; r < rounds; r++) {
        pthread_t t;
        pthread_barrier_init(&asked, NULL, 2);
        pthread_create(&t, NULL, worker, NULL);
        pthread_barrier_wait(&asked);
        pthread_cancel(t);
        pthread_barrier_wait(&asked);
        void *ret;
        pthread_join(t, &ret);
        cancelled += ret == PTHREAD_CANCELED;
        pthread_barrier_destroy(&asked);
    }
    printf("cancelled %d\n", cancelled);
    return cancelled == rounds ? 0 : 1;
}
