/* A shell's child, in small: the parent allocates at many call sites, then
 * forks a child that allocates at the same sites (the same stacks, so the
 * same site ids, spread over the parent's), at one of its own, and execs.
 *   work(SITES): for d = 1..SITES, d nested calls deep, malloc(d), free it
 *   first (parent):   kept = malloc(1000), live to the end
 *   round 0 (parent): work(SITES)                  SITES blocks, all freed
 *   round 1 (child):  work(SITES) from the same call instruction, then
 *                     mine = malloc(7), execl(TRUE_BIN)
 * The parent waits and returns 0 if the child exec'd and TRUE_BIN exited 0.
 * usage: fork_sites SITES TRUE_BIN */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

static void *down(int depth, int size) {
    if (depth > 1) return down(depth - 1, size);
    return malloc(size);
}

static void work(int sites) {
    for (int d = 1; d <= sites; d++) {
        void *p = down(d, d);
        sink = p;
        free(p);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int sites = atoi(argv[1]);
    const char *truebin = argv[2];
    sink = malloc(1000);
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            pid_t pid = fork();
            if (pid < 0) return 3;
            if (pid > 0) {
                int status = 0;
                waitpid(pid, &status, 0);
                return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
            }
        }
        work(sites);
    }
    sink = malloc(7);
    execl(truebin, "true", (char *)NULL);
    _exit(127);
}
