/* dlopen(argv[1]) ROUNDS times; each round calls plugin_alloc(100) and
 * dlcloses. usage: dlopen LIB ROUNDS */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    for (int r = 0; r < rounds; r++) {
        void *h = dlopen(argv[1], RTLD_NOW);
        if (!h) return 2;
        int (*f)(int) = (int (*)(int))dlsym(h, "plugin_alloc");
        if (!f || f(100) != 100) return 3;
        dlclose(h);
    }
    return 0;
}
