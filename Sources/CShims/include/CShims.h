#ifndef CSHIMS_H
#define CSHIMS_H

#include <stdint.h>
#include <sys/types.h>

/// makedev(3), major(3) and minor(3) are macros that Swift cannot call.
dev_t CShims_makedev(uint32_t major, uint32_t minor);
uint32_t CShims_major(dev_t dev);
uint32_t CShims_minor(dev_t dev);

/// Flags of openat2(2)'s `struct open_how.resolve`, re-exported as constants.
extern const uint64_t CShims_RESOLVE_IN_ROOT;
extern const uint64_t CShims_RESOLVE_NO_MAGICLINKS;
extern const uint64_t CShims_RESOLVE_NO_XDEV;
extern const uint64_t CShims_RESOLVE_NO_SYMLINKS;
extern const uint64_t CShims_RESOLVE_BENEATH;

/// openat2(2) through syscall(2): glibc 2.36 has no wrapper. Returns the fd, or -1 with errno set
/// (ENOSYS on kernels older than 5.6).
int CShims_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);

/// fsetxattr(2) and lsetxattr(2); <sys/xattr.h> is not part of the Glibc module.
int CShims_fsetxattr(int fd, const char *name, const void *value, size_t size);
int CShims_lsetxattr(const char *path, const char *name, const void *value, size_t size);

/// lgetxattr(2): the value's length, or -1 with errno.
long CShims_lgetxattr(const char *path, const char *name, void *value, size_t size);

/// llistxattr(2): the length of the NUL-separated name list, or -1 with errno.
long CShims_llistxattr(const char *path, char *list, size_t size);

/// renameat2(2) with RENAME_EXCHANGE: swaps two paths atomically. Returns 0 or -1 with errno.
int CShims_exchange(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

/// The mount id (statx STATX_MNT_ID, Linux 5.8) of `path` relative to `dirfd` (AT_EMPTY_PATH with
/// an empty path: the fd itself), never following a final symlink. Returns 0, or -1 with errno
/// (ENOSYS when the kernel does not report mount ids).
int CShims_mount_id(int dirfd, const char *path, uint64_t *mount_id);

/// flock(2) with LOCK_EX, blocking (`wait`) or not. Returns 0, or -1 with errno (EWOULDBLOCK).
int CShims_lock_exclusive(int fd, int wait);

/// Names the calling thread (prctl(PR_SET_NAME): at most 15 bytes are kept). Returns 0 or -1.
int CShims_set_thread_name(const char *name);

/// The errno of the calling thread, read and written without Glibc's overlay.
int CShims_errno(void);

/// Installs handlers that only record the signal (async-signal-safe) for every signal whose default
/// action ends the process (SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM,
/// SIGPROF, SIGIO, SIGPWR, SIGXCPU, SIGSTKFLT), so that the unpacker can stop between entries and
/// clean up; SIGPIPE and SIGXFSZ are ignored, so the write that caused them fails with EPIPE or
/// EFBIG instead. Returns 0, or -1 with errno.
int CShims_install_interrupt_handlers(void);
/// The first recorded signal number, or 0.
int CShims_pending_interrupt(void);
/// Restores the default actions (used before re-raising a signal).
void CShims_reset_interrupt_handlers(void);

/// Sends every terminating signal this process receives on to `child` (the unpacker running in a
/// user namespace of its own), and ignores SIGPIPE. Returns 0, or -1 with errno.
int CShims_forward_terminating_signals(int child);
/// flock(LOCK_SH), retried on EINTR; `wait` 0 adds LOCK_NB.
int CShims_lock_shared(int fd, int wait);
/// unshare(CLONE_NEWNS) for the calling thread, then / made recursively private.
int CShims_unshare_mounts(void);
/// mount -t overlay overlay TARGET -o OPTIONS.
int CShims_mount_overlay(const char *target, const char *options);
/// umount2, lazily when `detach`.
int CShims_unmount(const char *target, int detach);
/// syncfs(2).
int CShims_syncfs(int fd);

/// unshare(CLONE_NEWUSER): this process enters a new user namespace (it must be single-threaded).
int CShims_unshare_user(void);
/// Whether child `pid` has exited, without reaping it (waitid WNOWAIT): 1 yes, 0 not yet, -1 error.
/// Its process group can then still be signalled by its id before the id can be reused.
int CShims_child_exited(pid_t pid);

#endif
