/* A program that confines itself as a sandbox does (Chromium's kills on
 * system calls its policy does not expect): after allocating, it installs
 * a seccomp filter that kills the process on socket() and on
 * prctl(PR_GET_SECCOMP), allows everything else, then allocates and frees
 * again and exits 3. memscope must not make either call in it.
 *
 *   sandboxed        5 blocks of 100 bytes before the filter, 7 of 200
 *                    after (all freed), exit 3
 *   sandboxed fork   5 blocks of 100 bytes, then a child confines itself
 *                    and _exits 4 with no event of its own; the parent
 *                    frees them and exits 3 if the child exited 4 */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int confine(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_prctl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PR_GET_SECCOMP, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) return -1;
    return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

int main(int argc, char **argv) {
    void *before[5], *after[7];
    for (int i = 0; i < 5; i++) before[i] = malloc(100);
    if (argc > 1 && !strcmp(argv[1], "fork")) {
        pid_t child = fork();
        if (child == 0) _exit(confine() == 0 ? 4 : 1);
        int status = 0;
        if (child < 0 || waitpid(child, &status, 0) != child) return 1;
        for (int i = 0; i < 5; i++) free(before[i]);
        return WIFEXITED(status) && WEXITSTATUS(status) == 4 ? 3 : 1;
    }
    if (confine() != 0) {
        perror("seccomp");
        return 1;
    }
    for (int i = 0; i < 7; i++) after[i] = malloc(200);
    for (int i = 0; i < 7; i++) free(after[i]);
    for (int i = 0; i < 5; i++) free(before[i]);
    return 3;
}
