internal import CShims
import Glibc

/// The few calls Swift cannot make directly (macros, a syscall without a glibc wrapper, signal
/// handlers), through CShims.
package enum CSys {
    package static func makedev(_ major: UInt32, _ minor: UInt32) -> Glibc.dev_t { CShims_makedev(major, minor) }

    package static func fsetxattr(_ fd: Int32, _ name: String, _ value: UnsafeRawBufferPointer) -> Int32 {
        CShims_fsetxattr(fd, name, value.baseAddress, value.count)
    }

    package static func lsetxattr(_ path: UnsafePointer<CChar>, _ name: String, _ value: UnsafeRawBufferPointer)
        -> Int32
    {
        CShims_lsetxattr(path, name, value.baseAddress, value.count)
    }

    /// The size of extended attribute `name` of `path` (not following a final symlink), or -1
    /// with errno (ENODATA: not set).
    package static func lgetxattrSize(_ path: String, _ name: String) -> Int {
        CShims_lgetxattr(path, name, nil, 0)
    }

    /// The value of extended attribute `name` of `path` (not following a final symlink), up to
    /// 64 KiB; nil when it is not set; -1's errno otherwise, as a `SystemError`.
    package static func lgetxattr(_ path: String, _ name: String) throws(SystemError) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let count = buffer.withUnsafeMutableBytes { CShims_lgetxattr(path, name, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == ENODATA { return nil }
            throw SystemError(call: "lgetxattr \(name)", errno: errno, path: path)
        }
        return Array(buffer[..<count])
    }

    /// The names of the extended attributes of `path` (not following a final symlink); empty when
    /// the filesystem has none to give (ENOTSUP).
    package static func llistxattr(_ path: String) throws(SystemError) -> [String] {
        while true {
            let size = CShims_llistxattr(path, nil, 0)
            if size < 0 {
                if errno == ENOTSUP { return [] }
                throw SystemError(call: "llistxattr", errno: errno, path: path)
            }
            if size == 0 { return [] }
            var names = [CChar](repeating: 0, count: size)
            let got = names.withUnsafeMutableBufferPointer { CShims_llistxattr(path, $0.baseAddress, $0.count) }
            if got < 0 {
                if errno == ERANGE { continue }  // an attribute was added in between
                throw SystemError(call: "llistxattr", errno: errno, path: path)
            }
            return names[0..<got].split(separator: 0).map {
                String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
    }

    package static let resolveInRoot = CShims_RESOLVE_IN_ROOT
    package static let resolveNoMagicLinks = CShims_RESOLVE_NO_MAGICLINKS
    package static let resolveNoSymlinks = CShims_RESOLVE_NO_SYMLINKS

    /// openat2(2); -1 with errno (ENOSYS before Linux 5.6).
    package static func openat2(_ dirfd: Int32, _ path: UnsafePointer<CChar>, flags: Int32, resolve: UInt64) -> Int32 {
        CShims_openat2(dirfd, path, UInt64(UInt32(bitPattern: flags)), 0, resolve)
    }
}

/// Terminating signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGALRM, …), recorded by a C
/// handler and polled between entries so that an interrupted run removes its staging directory,
/// leaves an old bundle untouched and exits with the `interrupted` code. SIGPIPE and SIGXFSZ are
/// ignored once installed: the write that caused them fails (EPIPE, EFBIG) and is reported as such.
package enum Interrupts {
    /// Installs the handlers (idempotent).
    package static func install() {
        _ = CShims_install_interrupt_handlers()
    }

    /// The signal received so far, or `nil`.
    package static var pending: Int32? {
        let signal = CShims_pending_interrupt()
        return signal == 0 ? nil : signal
    }

    /// The usual name of a signal number (`SIGTERM`), or `signal N`.
    package static func name(of signal: Int32) -> String {
        let names: [Int32: String] = [
            SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGTERM: "SIGTERM", SIGUSR1: "SIGUSR1",
            SIGUSR2: "SIGUSR2", SIGALRM: "SIGALRM", SIGVTALRM: "SIGVTALRM", SIGPROF: "SIGPROF", SIGIO: "SIGIO",
            SIGPWR: "SIGPWR", SIGXCPU: "SIGXCPU", SIGSTKFLT: "SIGSTKFLT",
        ]
        return names[signal] ?? "signal \(signal)"
    }

    /// Restores default handling and re-sends the pending signal to this process, so that the
    /// parent sees death by signal after our cleanup.
    package static func reraise() {
        guard let signal = pending else { return }
        CShims_reset_interrupt_handlers()
        raise(signal)
    }
}

/// Swaps two paths atomically (renameat2 RENAME_EXCHANGE): publishing a bundle over an existing one
/// never leaves a moment without a complete bundle.
package func exchangePaths(_ a: String, _ b: String) throws(SystemError) {
    if CShims_exchange(AT_FDCWD, a, AT_FDCWD, b) != 0 {
        throw SystemError(call: "renameat2(RENAME_EXCHANGE)", errno: errno, path: b)
    }
}

/// flock(LOCK_EX) on `fd`, waiting for it or not; 0, or -1 with errno (EWOULDBLOCK: held by another
/// open file description, in this process or any other, on this host or, for a shared filesystem
/// that supports it, another).
/// Whether child `pid` has exited, without reaping it: its process group id cannot be reused
/// until it is waited for, so the group can still be killed by that id. A child that cannot be
/// waited for at all (ECHILD: SIGCHLD ignored, so the kernel reaped it) counts as exited, rather
/// than as running until a timeout.
package func childHasExited(_ pid: Int32) -> Bool { CShims_child_exited(pid) != 0 }

package func lockExclusive(_ fd: Int32, wait: Bool) -> Int32 {
    CShims_lock_exclusive(fd, wait ? 1 : 0)
}

/// The value of extended attribute `name` of `path` (not following a final symlink), or `nil`
/// when it is not set.
package func extendedAttribute(_ path: String, _ name: String) -> [UInt8]? {
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    let n = buffer.withUnsafeMutableBytes { CShims_lgetxattr(path, name, $0.baseAddress, $0.count) }
    guard n >= 0 else { return nil }
    return Array(buffer[0..<Int(n)])
}

/// Calls `body` with the (atime, mtime) pair that utimensat and futimens take, on the stack.
package func withTimes<R>(_ atime: timespec, _ mtime: timespec, _ body: (UnsafePointer<timespec>) -> R) -> R {
    let pair = (atime, mtime)
    return withUnsafePointer(to: pair) { $0.withMemoryRebound(to: timespec.self, capacity: 2, body) }
}
