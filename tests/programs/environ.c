/* Programs that rewrite their environment, then exec: memscope must still
 * reach the new image (it carries LD_PRELOAD and MEMSCOPE_* itself).
 * usage: environ MODE TRUE_BIN
 *   churn:    1000 x setenv/unsetenv (glibc reallocs environ) around 100
 *             blocks of 48 bytes, then exits 0
 *   clearenv: clearenv(), setenv("ONLY", "1"), 10 blocks of 32 bytes, exec
 *   empty:    execve(TRUE_BIN, argv, {NULL}): an empty environment */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *mode = argv[1];
    if (!strcmp(mode, "churn")) {
        void *keep[100];
        char name[32];
        for (int i = 0; i < 1000; i++) {
            snprintf(name, sizeof name, "MS_VAR_%d", i);
            if (setenv(name, "value", 1) != 0) return 3;
            if (i % 10 == 0) keep[i / 10] = malloc(48);
        }
        for (int i = 0; i < 1000; i++) {
            snprintf(name, sizeof name, "MS_VAR_%d", i);
            unsetenv(name);
        }
        for (int i = 0; i < 100; i++) free(keep[i]);
        return 0;
    }
    if (!strcmp(mode, "clearenv")) {
        if (clearenv() != 0) return 4;
        setenv("ONLY", "1", 1);
        for (int i = 0; i < 10; i++) free(malloc(32));
        execl(argv[2], argv[2], (char *)NULL);
        return 5;
    }
    if (!strcmp(mode, "empty")) {
        char *const env[] = {NULL};
        char *const args[] = {argv[2], NULL};
        execve(argv[2], args, env);
        return 6;
    }
    return 2;
}
