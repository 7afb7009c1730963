/* fork, fork+_exit, fork+exec, vfork+exec and exec with an empty
 * environment. The parent allocates a (100 B) and b (200 B) before forking.
 *   child: c = malloc(300); free(a); then, by mode:
 *     fork   -> exit(3)        fork-_exit -> _exit(4)
 *     exec   -> execl(TRUE_BIN)  env-i  -> execle(TRUE_BIN) with an empty env
 *   vfork: the child only execs TRUE_BIN (no allocation).
 *   parent: waits, free(b), d = malloc(400), returns 0 (a and d leak).
 * usage: processes MODE TRUE_BIN */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "fork";
    const char *truebin = argc > 2 ? argv[2] : "/bin/true";
    void *a = malloc(100);
    void *b = malloc(200);
    pid_t pid;
    if (strcmp(mode, "vfork") == 0) {
        pid = vfork();
        if (pid == 0) {
            execl(truebin, "true", (char *)NULL);
            _exit(127);
        }
    } else {
        pid = fork();
        if (pid == 0) {
            sink = malloc(300);
            free(a);
            if (strcmp(mode, "fork") == 0) exit(3);
            if (strcmp(mode, "fork-_exit") == 0) _exit(4);
            if (strcmp(mode, "exec") == 0) execl(truebin, "true", (char *)NULL);
            if (strcmp(mode, "env-i") == 0) {
                char *empty[] = {NULL};
                execle(truebin, "true", (char *)NULL, empty);
            }
            _exit(127);
        }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    free(b);
    sink = malloc(400);
    sink = a;
    return WIFEXITED(status) && WEXITSTATUS(status) < 100 ? 0 : 1;
}
