/* Resident memory beside the heap: `mmap MIB` maps MIB MiB anonymously and
 * touches every page without malloc; `malloc MIB` mallocs and touches MIB MiB
 * (then frees it). Prints the number of bytes it touched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    size_t n = (size_t)atoi(argv[2]) << 20;
    char *p;
    if (strcmp(argv[1], "mmap") == 0) {
        p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 1;
    } else {
        p = malloc(n);
        if (!p) return 1;
    }
    for (size_t i = 0; i < n; i += 4096) p[i] = 1;
    printf("%zu\n", n);
    if (strcmp(argv[1], "malloc") == 0) free(p);
    return 0;
}
