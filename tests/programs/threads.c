/* THREADS threads each allocate ITERS blocks (sizes 16 + i % 200) and hand
 * every block to the next thread, which frees it: every free is a
 * cross-thread free, and addresses are reused across threads all the time.
 * Thread t keeps (leaks) the block it allocated at i == ITERS / 2.
 * Program-made totals: allocations THREADS*ITERS, frees THREADS*(ITERS-1),
 * bytes THREADS * sum(16 + i % 200).
 * usage: threads THREADS ITERS */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define MAXT 64
#define QCAP 1024

struct mailbox {
    pthread_mutex_t mu;
    void *items[QCAP];
    unsigned head, tail;
};

static struct mailbox boxes[MAXT];
static int nthreads;
static long iters;
static void *kept[MAXT];

static int drain(struct mailbox *b);

/* Puts p in b; while b is full, keeps draining `own` so no cycle of full
 * mailboxes can form. */
static void put(struct mailbox *b, void *p, struct mailbox *own) {
    for (;;) {
        pthread_mutex_lock(&b->mu);
        if (b->tail - b->head < QCAP) {
            b->items[b->tail++ % QCAP] = p;
            pthread_mutex_unlock(&b->mu);
            return;
        }
        pthread_mutex_unlock(&b->mu);
        drain(own);
        sched_yield();
    }
}

static int drain(struct mailbox *b) {
    int n = 0;
    pthread_mutex_lock(&b->mu);
    while (b->head != b->tail) {
        free(b->items[b->head++ % QCAP]);
        n++;
    }
    pthread_mutex_unlock(&b->mu);
    return n;
}

static int producers_done;

static void *worker(void *arg) {
    int t = (int)(intptr_t)arg;
    struct mailbox *next = &boxes[(t + 1) % nthreads];
    for (long i = 0; i < iters; i++) {
        char *p = malloc(16 + i % 200);
        p[0] = (char)i;
        if (i == iters / 2)
            kept[t] = p;
        else
            put(next, p, &boxes[t]);
        if ((i & 15) == 0) drain(&boxes[t]);
    }
    __atomic_add_fetch(&producers_done, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&producers_done, __ATOMIC_SEQ_CST) < nthreads) {
        drain(&boxes[t]);
        sched_yield();
    }
    drain(&boxes[t]);
    return NULL;
}

int main(int argc, char **argv) {
    nthreads = argc > 1 ? atoi(argv[1]) : 8;
    iters = argc > 2 ? atol(argv[2]) : 100000;
    if (nthreads < 1 || nthreads > MAXT) return 2;
    pthread_t th[MAXT];
    for (int t = 0; t < nthreads; t++) pthread_mutex_init(&boxes[t].mu, NULL);
    for (int t = 0; t < nthreads; t++) pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
    for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
    return kept[0] || iters == 0 ? 0 : 1;
}
