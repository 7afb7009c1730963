/* A forked worker that goes on for long: memscope's own memory in the
 * child outgrows the fresh region a fork child allocates from at first
 * (engine/src/arena.rs), so its tables move to malloc mid-way; and the
 * worker forks a grandchild of its own, whose region lies past its parent's.
 * The parent allocates p (1000 B) and forks the worker, which:
 *   allocates N blocks of 24 B (kept), frees every other one,
 *   forks a grandchild that allocates g (70 B), frees p and exits 3,
 *   frees the rest of its N blocks and p, and exits 4.
 * The parent waits, frees p, returns 0 (1 if a child ended otherwise).
 * usage: fork_worker N */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

static int wait_for(pid_t pid, int code) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

static void worker(long n, void *p) {
    void **kept = calloc((size_t)n, sizeof(void *));
    for (long i = 0; i < n; i++) kept[i] = malloc(24);
    for (long i = 0; i < n; i += 2) free(kept[i]);
    pid_t pid = fork();
    if (pid == 0) {
        sink = malloc(70);
        free(p);
        exit(3);
    }
    int ok = pid > 0 && wait_for(pid, 3);
    for (long i = 1; i < n; i += 2) free(kept[i]);
    free(kept);
    free(p);
    exit(ok ? 4 : 1);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    void *p = malloc(1000);
    pid_t pid = fork();
    if (pid == 0) worker(n, p);
    int ok = pid > 0 && wait_for(pid, 4);
    free(p);
    return !ok;
}
