#define _GNU_SOURCE
#include "CShims.h"

#include <errno.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

dev_t CShims_makedev(uint32_t major, uint32_t minor) { return makedev(major, minor); }
uint32_t CShims_major(dev_t dev) { return major(dev); }
uint32_t CShims_minor(dev_t dev) { return minor(dev); }

const uint64_t CShims_RESOLVE_IN_ROOT = RESOLVE_IN_ROOT;
const uint64_t CShims_RESOLVE_NO_MAGICLINKS = RESOLVE_NO_MAGICLINKS;
const uint64_t CShims_RESOLVE_NO_XDEV = RESOLVE_NO_XDEV;
const uint64_t CShims_RESOLVE_NO_SYMLINKS = RESOLVE_NO_SYMLINKS;
const uint64_t CShims_RESOLVE_BENEATH = RESOLVE_BENEATH;

int CShims_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
#ifdef SYS_openat2
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = flags;
    how.mode = mode;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
#else
    errno = ENOSYS;
    return -1;
#endif
}

int CShims_errno(void) { return errno; }

#include <signal.h>

static volatile sig_atomic_t pending_signal = 0;

static void record_signal(int signo) {
    if (pending_signal == 0) {
        pending_signal = signo;
    }
}

/* Every signal whose default action ends the process, except those that report a fault of the
   process itself (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS: the Swift runtime's
   crash reporter keeps them) and SIGKILL/SIGSTOP, which cannot be caught. */
static const int terminating_signals[] = {
    SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF,
    SIGIO, SIGPWR, SIGXCPU,
#ifdef SIGSTKFLT
    SIGSTKFLT,
#endif
};
#define TERMINATING_COUNT (sizeof(terminating_signals) / sizeof(terminating_signals[0]))

int CShims_install_interrupt_handlers(void) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = record_signal;
    sigemptyset(&action.sa_mask);
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < TERMINATING_COUNT; i++) {
        if (sigaction(terminating_signals[i], &action, NULL) != 0) return -1;
        sigaddset(&set, terminating_signals[i]);
    }
    /* Writing to a closed pipe or past RLIMIT_FSIZE: the write fails with EPIPE or EFBIG and is
       reported like any other failed write. */
    struct sigaction ignore;
    memset(&ignore, 0, sizeof(ignore));
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    if (sigaction(SIGPIPE, &ignore, NULL) != 0) return -1;
    if (sigaction(SIGXFSZ, &ignore, NULL) != 0) return -1;
    /* A parent may have started us with these blocked (some process launchers do): unblock them,
       or an interrupted run could not clean up. */
    return sigprocmask(SIG_UNBLOCK, &set, NULL);
}

int CShims_pending_interrupt(void) { return pending_signal; }

void CShims_reset_interrupt_handlers(void) {
    for (size_t i = 0; i < TERMINATING_COUNT; i++) signal(terminating_signals[i], SIG_DFL);
}

static volatile sig_atomic_t forward_target = 0;

static void forward_signal(int signo) {
    if (forward_target > 0) kill((pid_t)forward_target, signo);
}

int CShims_forward_terminating_signals(int child) {
    forward_target = child;
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = forward_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (size_t i = 0; i < TERMINATING_COUNT; i++) {
        if (sigaction(terminating_signals[i], &action, NULL) != 0) return -1;
    }
    return signal(SIGPIPE, SIG_IGN) == SIG_ERR ? -1 : 0;
}

#include <sched.h>

int CShims_unshare_user(void) { return unshare(CLONE_NEWUSER); }

#include <sys/file.h>
#include <sys/stat.h>

#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif

int CShims_mount_id(int dirfd, const char *path, uint64_t *mount_id) {
    struct statx stx;
    memset(&stx, 0, sizeof(stx));
    int flags = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | (path[0] == 0 ? AT_EMPTY_PATH : 0);
    if (statx(dirfd, path, flags, STATX_MNT_ID, &stx) != 0) return -1;
    if (!(stx.stx_mask & STATX_MNT_ID)) {
        errno = ENOSYS;
        return -1;
    }
    *mount_id = stx.stx_mnt_id;
    return 0;
}

int CShims_lock_exclusive(int fd, int wait) {
    int rc;
    do {
        rc = flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
    } while (rc != 0 && errno == EINTR);
    return rc;
}

int CShims_fsetxattr(int fd, const char *name, const void *value, size_t size) {
    return fsetxattr(fd, name, value, size, 0);
}

int CShims_lsetxattr(const char *path, const char *name, const void *value, size_t size) {
    return lsetxattr(path, name, value, size, 0);
}

int CShims_exchange(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, RENAME_EXCHANGE);
}

long CShims_lgetxattr(const char *path, const char *name, void *value, size_t size) {
    return (long)lgetxattr(path, name, value, size);
}

long CShims_llistxattr(const char *path, char *list, size_t size) {
    return (long)llistxattr(path, list, size);
}

int CShims_set_thread_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}

#include <sys/wait.h>

int CShims_child_exited(pid_t pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return -1;
    return info.si_pid == pid ? 1 : 0;
}

#include <sys/mount.h>

int CShims_lock_shared(int fd, int wait) {
    int rc;
    do {
        rc = flock(fd, LOCK_SH | (wait ? 0 : LOCK_NB));
    } while (rc != 0 && errno == EINTR);
    return rc;
}

int CShims_unshare_mounts(void) {
    if (unshare(CLONE_NEWNS) != 0) return -1;
    // Nothing mounted here propagates back to the namespace this thread came from.
    return mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL);
}

int CShims_mount_overlay(const char *target, const char *options) {
    return mount("overlay", target, "overlay", 0, options);
}

int CShims_unmount(const char *target, int detach) { return umount2(target, detach ? MNT_DETACH : 0); }

int CShims_syncfs(int fd) { return syncfs(fd); }
