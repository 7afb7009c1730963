/* A library the dlopen test loads: allocates n blocks of 32 bytes and frees
 * all but one. */
#include <stdlib.h>

void *plugin_kept;

int plugin_alloc(int n) {
    for (int i = 0; i < n; i++) {
        void *p = malloc(32);
        if (i == 0) plugin_kept = p;
        else free(p);
    }
    return n;
}
