/* A single-threaded program that mallocs and frees until it is killed:
 * memscope merges its ring on this thread, so a signal often lands while
 * memscope's own code holds the engine's lock. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    void *keep[1024] = {0};
    puts("churning");
    fflush(stdout);
    for (unsigned long i = 0;; i++) {
        unsigned k = (unsigned)((i * 2654435761u) % 1024);
        free(keep[k]);
        keep[k] = malloc(16 + (i % 4000));
    }
}
