/* Hostile names and thread churn.
 *   names          names its threads with control characters and markup
 *   short-threads N  creates and joins N short threads one after another,
 *                  each allocating 3 blocks (one of them kept) */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;
static void *kept[100000];

static void *named(void *arg) {
    pthread_setname_np(pthread_self(), (const char *)arg);
    void *p = malloc(321);
    sink = p;
    free(p);
    sink = malloc(123);
    return NULL;
}

static void *short_lived(void *arg) {
    intptr_t i = (intptr_t)arg;
    free(malloc(10));
    free(malloc(20));
    kept[i] = malloc(30);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "names")) {
        const char *names[] = {"</script>\x1b[31m", "a\"b\\c\n\t", "\x01\x02\x7f"};
        for (int i = 0; i < 3; i++) {
            pthread_t t;
            pthread_create(&t, NULL, named, (void *)names[i]);
            pthread_join(t, NULL);
        }
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "short-threads")) {
        long n = atol(argv[2]);
        for (long i = 0; i < n && i < 100000; i++) {
            pthread_t t;
            if (pthread_create(&t, NULL, short_lived, (void *)(intptr_t)i) != 0) return 3;
            pthread_join(t, NULL);
        }
        return 0;
    }
    return 2;
}
