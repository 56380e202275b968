/* hack/bench-run: times one command for hack/bench, with less overhead than /usr/bin/time.
 *
 * Usage: bench-run OUTFILE COMMAND [ARG...]
 *
 * Starts COMMAND with posix_spawnp (its stdout and stderr are this program's), waits for it with
 * wait4, and writes one line to OUTFILE: wall seconds (CLOCK_MONOTONIC from just before the
 * spawn to just after the wait), peak RSS in KiB, user seconds and system seconds. The rusage is
 * wait4's, as GNU time reports it: the command's, including the descendants it waited for (their
 * times add up; the RSS is the largest single process's). Exits with the command's status, or
 * 128 + the signal that ended it.
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double seconds(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench-run OUTFILE COMMAND [ARG...]\n");
        return 2;
    }
    struct timespec start, end;
    struct rusage usage;
    pid_t pid;
    int status;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int rc = posix_spawnp(&pid, argv[2], NULL, NULL, argv + 2, environ);
    if (rc != 0) {
        fprintf(stderr, "bench-run: cannot start %s: %s\n", argv[2], strerror(rc));
        return 127;
    }
    while (wait4(pid, &status, 0, &usage) < 0) {
        if (errno != EINTR) {
            perror("bench-run: wait4");
            return 125;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    double wall = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
    FILE *out = fopen(argv[1], "w");
    if (out == NULL) {
        perror("bench-run: cannot write the result file");
        return 125;
    }
    fprintf(out, "%.6f %ld %.6f %.6f\n", wall, usage.ru_maxrss, seconds(usage.ru_utime), seconds(usage.ru_stime));
    if (fclose(out) != 0) {
        perror("bench-run: cannot write the result file");
        return 125;
    }
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
