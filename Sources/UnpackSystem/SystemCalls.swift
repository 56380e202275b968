import Glibc
import Synchronization

/// The system calls that write a tree, as values: `.real` calls the kernel; a test makes one fail
/// the way a full disk, a failing device or a signal would (`SystemCalls.failing`), for one
/// applier only, so tests that run side by side do not see each other's faults (the pattern of
/// swift-nio's syscall mocking, scoped to an instance instead of a process).
package struct SystemCalls: Sendable {
    /// pwrite(2) when the offset is given, else write(2).
    package var write: @Sendable (_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int, _ offset: Int64?) -> Int
    /// openat(2) with a mode (file creation).
    package var openat: @Sendable (_ fd: Int32, _ name: UnsafePointer<CChar>, _ flags: Int32, _ mode: mode_t) -> Int32
    /// mkdirat(2).
    package var mkdirat: @Sendable (_ fd: Int32, _ name: UnsafePointer<CChar>, _ mode: mode_t) -> Int32

    /// The kernel's.
    package static let real = SystemCalls(
        write: { fd, bytes, count, offset in
            offset.map { pwrite(fd, bytes, count, off_t($0)) } ?? Glibc.write(fd, bytes, count)
        },
        openat: { fd, name, flags, mode in Glibc.openat(fd, name, flags, mode) },
        mkdirat: { fd, name, mode in Glibc.mkdirat(fd, name, mode) })

    /// Which call a fault hits.
    package enum Call: String, Sendable {
        case write, openat, mkdirat
    }

    /// -1 with `errno` set to `code` when `fails()` says so, else what `call` returns.
    private static func inject<R: SignedInteger>(_ fails: () -> Bool, _ code: Int32, _ call: () -> R) -> R {
        guard fails() else { return call() }
        errno = code
        return -1
    }

    /// `.real`, except that `call` fails with `errno` after succeeding `after` times, `times` times
    /// in a row (then it succeeds again).
    package static func failing(_ call: Call, errno code: Int32, after: Int = 0, times: Int = .max) -> SystemCalls {
        let counter = Mutex(0)
        let fails: @Sendable () -> Bool = {
            counter.withLock { n in
                defer { n += 1 }
                return n >= after && n - after < times
            }
        }
        var calls = SystemCalls.real
        switch call {
        case .write:
            calls.write = { fd, bytes, count, offset in
                inject(fails, code) { SystemCalls.real.write(fd, bytes, count, offset) }
            }
        case .openat:
            calls.openat = { fd, name, flags, mode in
                inject(fails, code) { SystemCalls.real.openat(fd, name, flags, mode) }
            }
        case .mkdirat:
            calls.mkdirat = { fd, name, mode in inject(fails, code) { SystemCalls.real.mkdirat(fd, name, mode) } }
        }
        return calls
    }
}
