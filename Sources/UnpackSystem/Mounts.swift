internal import CShims
import Glibc

/// An overlayfs mount: read-only lower directories (uppermost first) and, for a writable mount, an
/// upper and a work directory on one filesystem.
package struct OverlayMount: Sendable, Equatable {
    /// Uppermost first, as overlayfs's `lowerdir` lists them.
    package var lowers: [String]
    package var upper: String?
    package var work: String?
    /// `userxattr`: overlayfs's own xattrs are `user.overlay.*` (a mount inside a user namespace).
    package var userXattr: Bool

    package init(lowers: [String], upper: String? = nil, work: String? = nil, userXattr: Bool = false) {
        self.lowers = lowers
        self.upper = upper
        self.work = work
        self.userXattr = userXattr
    }

    /// The option string mount(2) takes. A path holding `,`, `:` or `\` (which the option syntax
    /// gives a meaning) is refused rather than escaped.
    package func options() throws(SystemError) -> String {
        let paths = lowers + [upper, work].compactMap { $0 }
        if let bad = paths.first(where: { $0.contains(",") || $0.contains(":") || $0.contains("\\") }) {
            throw SystemError(call: "mount overlay (a path with , : or \\)", errno: EINVAL, path: bad)
        }
        var parts = ["lowerdir=" + lowers.joined(separator: ":")]
        if let upper, let work {
            parts.append("upperdir=" + upper)
            parts.append("workdir=" + work)
        }
        if userXattr { parts.append("userxattr") }
        // No index or redirect options: the kernel's defaults apply (layers stay plain directories).
        return parts.joined(separator: ",")
    }

    /// Mounts the overlay on `target`. The option string is limited to a page by the kernel.
    package func mount(on target: String) throws(SystemError) {
        let text = try options()
        guard text.utf8.count < 4096 else {
            throw SystemError(call: "mount overlay (options over a page: too many layers)", errno: E2BIG, path: target)
        }
        if CShims_mount_overlay(target, text) != 0 {
            throw SystemError(call: "mount overlay", errno: errno, path: target)
        }
    }
}

/// Unmounts `target`; `detach` lets a busy mount go once its last user leaves it.
package func unmount(_ target: String, detach: Bool = false) throws(SystemError) {
    if CShims_unmount(target, detach ? 1 : 0) != 0 {
        throw SystemError(call: "umount2", errno: errno, path: target)
    }
}

/// Gives the calling thread a mount namespace of its own, with every mount private: what it
/// mounts is seen by it and the threads it starts only, and goes away with them (even when the
/// process is killed).
package func unshareMountNamespace() throws(SystemError) {
    if CShims_unshare_mounts() != 0 {
        throw SystemError(call: "unshare(CLONE_NEWNS)", errno: errno)
    }
}

/// syncfs(2) on the filesystem holding `fd`.
package func syncFilesystem(_ fd: Int32, path: String) throws(SystemError) {
    if CShims_syncfs(fd) != 0 { throw SystemError(call: "syncfs", errno: errno, path: path) }
}

/// `path` made absolute with every symbolic link resolved (realpath(3)); `nil` when it does not exist.
package func canonicalPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}

/// Whether `path` is a mount point: its mount differs from its parent's.
package func isMountPoint(_ path: String) -> Bool {
    guard let canonical = canonicalPath(path) else { return false }
    guard let mounts = mountPoints(under: canonical) else { return false }
    return mounts.contains(canonical)
}

/// An flock on a lock file, released when the value is dropped (its fd closes).
package final class FileLock: Sendable {
    private let fd: OwnedFD
    package let path: String

    private init(fd: OwnedFD, path: String) {
        self.fd = fd
        self.path = path
    }

    /// Opens (creating) `path` and locks it, exclusively or shared, waiting for it or not: nil
    /// when `wait` is false and another holds it.
    package static func lock(_ path: String, exclusive: Bool, wait: Bool) throws(SystemError) -> FileLock? {
        let raw = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard raw >= 0 else { throw SystemError(call: "open", errno: errno, path: path) }
        let fd = OwnedFD(raw)
        let rc = exclusive ? CShims_lock_exclusive(raw, wait ? 1 : 0) : CShims_lock_shared(raw, wait ? 1 : 0)
        if rc != 0 {
            if errno == EWOULDBLOCK && !wait { return nil }
            throw SystemError(call: "flock", errno: errno, path: path)
        }
        return FileLock(fd: fd, path: path)
    }

    /// Turns an exclusive lock into a shared one (others waiting to share it may proceed).
    package func share() throws(SystemError) {
        if CShims_lock_shared(fd.rawValue, 1) != 0 {
            throw SystemError(call: "flock(LOCK_SH)", errno: errno, path: path)
        }
    }
}
