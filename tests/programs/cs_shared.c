/* A library linked into the call-site test program. */
#include <stdlib.h>

__attribute__((noinline)) void *cs_shared_alloc(size_t n) {
    void *p = malloc(n); /* SITE:shared */
    __asm__ volatile("" ::: "memory");
    return p;
}
