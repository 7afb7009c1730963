/* Allocations from known functions at known lines, for the call-site tests.
 * Each allocating line carries a SITE marker the test looks up; the counts
 * per site are fixed: from_a 7 x 100 B, from_b (through inline_helper) 5 x
 * 200 B, from_shared (a linked library) 3 x 300 B, and the dlopen'ed
 * plugin's 1 x 100 x 32 B, closed before the end; shared_leaf 10 x 16 B
 * through twin_a and 10 x 16 B through twin_b, interleaved.
 * usage: callsites PLUGIN.so */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

void *cs_shared_alloc(size_t n);

__attribute__((noinline)) void *from_a(size_t n) {
    void *p = malloc(n); /* SITE:a */
    __asm__ volatile("" ::: "memory"); /* no tail call */
    return p;
}

static inline __attribute__((always_inline)) void *inline_helper(size_t n) {
    return calloc(1, n); /* SITE:inline */
}

__attribute__((noinline)) void *from_b(size_t n) {
    void *p = inline_helper(n); /* SITE:b */
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) void *deep(int levels, size_t n) {
    void *p = levels == 0 ? from_a(n) : deep(levels - 1, n); /* SITE:deep */
    __asm__ volatile("" ::: "memory");
    return p;
}

/* Two callers with identical frames: shared_leaf's malloc sees the same
 * return address, stack pointer and frame pointer from both, and only the
 * words further up the stack tell the two stacks apart. */
__attribute__((noinline)) void *shared_leaf(size_t n) {
    void *p = malloc(n); /* SITE:leaf */
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) void *twin_a(size_t n) {
    void *p = shared_leaf(n); /* SITE:twin_a */
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) void *twin_b(size_t n) {
    void *p = shared_leaf(n); /* SITE:twin_b */
    __asm__ volatile("" ::: "memory");
    return p;
}

int main(int argc, char **argv) {
    for (int i = 0; i < 20; i++) free(i % 2 ? twin_b(16) : twin_a(16)); /* SITE:twins */
    for (int i = 0; i < 7; i++) free(from_a(100));
    for (int i = 0; i < 5; i++) free(from_b(200));
    for (int i = 0; i < 3; i++) free(cs_shared_alloc(300));
    void *kept = deep(20, 400);
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) return 2;
    int (*plugin)(int) = (int (*)(int))dlsym(h, "plugin_alloc");
    if (!plugin || plugin(100) != 100) return 3;
    dlclose(h);
    printf("%p\n", kept);
    return 0;
}
