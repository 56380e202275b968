import Glibc

/// Opening names beneath a directory without following symlinks: the one routine every module
/// uses for a layout's files, the blob cache, a listed tree and a root's directories.
extension OwnedFD {
    /// Opens `name`, one component, in this directory with `flags` plus `O_NOFOLLOW | O_CLOEXEC`
    /// (retried on EINTR): a symlink there is never followed, and with `O_PATH` it is opened
    /// itself. `display` names the path in the error.
    package func openChild(_ name: String, flags: Int32, display: String? = nil) throws(SystemError) -> OwnedFD {
        let all = flags | O_NOFOLLOW | O_CLOEXEC
        return OwnedFD(try retryingSyscall("openat", path: display ?? name) { openat(rawValue, name, all) })
    }

    /// `openChild` for a name given as bytes (a tree's names need not be UTF-8); `display` is
    /// only made for an error (the applier opens a directory per entry).
    package func openChild(
        bytes name: some Collection<UInt8>, flags: Int32, display: @autoclosure () -> String
    ) throws(SystemError) -> OwnedFD {
        let all = flags | O_NOFOLLOW | O_CLOEXEC
        while true {
            let fd = name.withCString { openat(rawValue, $0, all) }
            if fd >= 0 { return OwnedFD(fd) }
            let e = errno
            if e != EINTR { throw SystemError(call: "openat", errno: e, path: display()) }
        }
    }

    /// The status of `name` in this directory, not following a symlink (fstatat with
    /// `AT_SYMLINK_NOFOLLOW`); `nil` when it does not exist.
    package func statusOfChild(_ name: String, display: String? = nil) throws(SystemError) -> stat? {
        var st = stat()
        if fstatat(rawValue, name, &st, AT_SYMLINK_NOFOLLOW) == 0 { return st }
        if errno == ENOENT { return nil }
        throw SystemError(call: "fstatat", errno: errno, path: display ?? name)
    }

    /// Why `openBeneath` opened nothing.
    package enum BeneathFailure: Error, Sendable {
        /// It, or a directory on the way, does not exist.
        case missing(SystemError)
        /// A symlink on the way: the components walked up to it.
        case symlink(String)
        /// The last component is not a regular file (a FIFO, a device, a directory).
        case notRegular
        /// Another failure.
        case failed(SystemError)
    }

    /// Opens `components` beneath this directory for reading, following no symlink and opening
    /// only a regular file: each component is opened with `O_PATH | O_NOFOLLOW` (which runs no
    /// driver and does not block on a FIFO), checked with fstat, and the file is reopened for
    /// reading through /proc/self/fd only once it is known to be regular.
    package func openBeneath(_ components: [String]) -> Result<OwnedFD, BeneathFailure> {
        var current = self
        for (i, component) in components.enumerated() {
            let walked = components[...i].joined(separator: "/")
            let handle: OwnedFD
            let st: stat
            do throws(SystemError) {
                handle = try current.openChild(component, flags: O_PATH_VALUE, display: walked)
                st = try handle.status()
            } catch {
                return .failure(error.errno == ENOENT || error.errno == ENOTDIR ? .missing(error) : .failed(error))
            }
            if (st.st_mode & S_IFMT) == S_IFLNK { return .failure(.symlink(walked)) }
            if i < components.count - 1 {
                guard st.isDirectory else {
                    return .failure(.missing(SystemError(call: "openat", errno: ENOTDIR, path: walked)))
                }
                current = handle
                continue
            }
            guard st.isRegularFile else { return .failure(.notRegular) }
            do throws(SystemError) {
                return .success(try OwnedFD.openForReading("/proc/self/fd/\(handle.rawValue)"))
            } catch {
                return .failure(.failed(error))
            }
        }
        return .failure(.notRegular)
    }
}
