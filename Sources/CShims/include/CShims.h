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
extern const uint64_t CShims_RESOLVE_BENEATH;

/// openat2(2) through syscall(2): glibc 2.36 has no wrapper. Returns the fd, or -1 with errno set
/// (ENOSYS on kernels older than 5.6).
int CShims_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);

/// The errno of the calling thread, read and written without Glibc's overlay.
int CShims_errno(void);

#endif
