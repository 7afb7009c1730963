/* What a program can see of its own heap and environment, printed so that
 * a traced run can be compared with an un-traced one byte for byte.
 *   heap_layout one       a deterministic churn of blocks on one thread
 *   heap_layout threads   the same, then again while a second thread churns
 * Prints the low 12 bits of every 16th block's address (address-space
 * randomisation moves whole pages only), glibc's own count of the bytes in
 * use, and whether memscope's markers (the root image, the exec counter) are
 * in the environment. */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 64

static void churn(const char *who, uint64_t seed, int print) {
    void *keep[SLOTS] = {0};
    uint64_t r = seed;
    for (int i = 0; i < 4000; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        int k = (int)(r % SLOTS);
        free(keep[k]);
        keep[k] = malloc(8 + (r >> 20) % 3000);
        if (print && i % 16 == 0) printf("%s %03lx\n", who, (unsigned long)((uintptr_t)keep[k] & 0xfff));
    }
    for (int k = 0; k < SLOTS; k++) free(keep[k]);
}

static void *second(void *arg) {
    (void)arg;
    churn("second", 42, 0);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    churn("main", 88172645463325252ull, 1);
    if (!strcmp(argv[1], "threads")) {
        pthread_t t;
        if (pthread_create(&t, NULL, second, NULL)) return 3;
        churn("main-again", 7, 1);
        pthread_join(t, NULL);
        churn("main-after", 9, 1);
    }
    struct mallinfo2 m = mallinfo2();
    printf("main arena: %zu bytes, %zu in use\n", m.arena, m.uordblks);
    printf("MEMSCOPE_ROOT_PID %s\n", getenv("MEMSCOPE_ROOT_PID") ? "set" : "unset");
    printf("MEMSCOPE_EXEC_SEQ %s\n", getenv("MEMSCOPE_EXEC_SEQ") ? "set" : "unset");
    return 0;
}
