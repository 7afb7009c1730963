/* A shell's children, in small: the parent forks CHILDREN children one
 * after another and waits for each; each child runs code the parent never
 * does (child_path: malloc(333) and free it, then malloc(77)), then execs
 * TRUE_BIN (mode "exec") or exits (mode "exit"). The parent itself never
 * allocates. Exit status 0 when every child exec'd or exited with 0.
 * usage: fork_children CHILDREN TRUE_BIN exec|exit */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

__attribute__((noinline)) static void child_path(void) {
    void *p = malloc(333);
    sink = p;
    free(p);
    sink = malloc(77);
}

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    int children = atoi(argv[1]);
    int exec = strcmp(argv[3], "exec") == 0;
    for (int i = 0; i < children; i++) {
        pid_t pid = fork();
        if (pid < 0) return 3;
        if (pid == 0) {
            child_path();
            if (exec) execl(argv[2], "true", (char *)NULL);
            _exit(exec ? 127 : 0);
        }
        int status = 0;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
    }
    return 0;
}
