#define _GNU_SOURCE
#include "CShims.h"

#include <errno.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

dev_t CShims_makedev(uint32_t major, uint32_t minor) { return makedev(major, minor); }
uint32_t CShims_major(dev_t dev) { return major(dev); }
uint32_t CShims_minor(dev_t dev) { return minor(dev); }

const uint64_t CShims_RESOLVE_IN_ROOT = RESOLVE_IN_ROOT;
const uint64_t CShims_RESOLVE_NO_MAGICLINKS = RESOLVE_NO_MAGICLINKS;
const uint64_t CShims_RESOLVE_NO_XDEV = RESOLVE_NO_XDEV;
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
