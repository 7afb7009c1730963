/* The variadic exec functions, which stable Rust cannot define (ffi.rs
 * exports execl/execlp/execle as jumps to these): each gathers
 * its arguments into an array and calls the array form, which libmemscope.so
 * interposes (snapshot "end": "exec", LD_PRELOAD kept for the new image). */
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

#define GATHER(first, argv, n, ap)                                   \
    size_t n = 1;                                                    \
    {                                                                \
        va_list cnt;                                                 \
        va_copy(cnt, ap);                                            \
        while (va_arg(cnt, const char *) != NULL) n++;               \
        va_end(cnt);                                                 \
    }                                                                \
    const char *argv[n + 1];                                         \
    argv[0] = first;                                                 \
    for (size_t i = 1; i <= n; i++) argv[i] = va_arg(ap, const char *);

int memscope_execl(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    GATHER(arg, argv, n, ap);
    va_end(ap);
    return execv(path, (char *const *)argv);
}

int memscope_execlp(const char *file, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    GATHER(arg, argv, n, ap);
    va_end(ap);
    return execvp(file, (char *const *)argv);
}

int memscope_execle(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    GATHER(arg, argv, n, ap);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, (char *const *)argv, envp);
}
