import Glibc

/// A failed system call: its name, the errno, and the path it was about.
package struct SystemError: Error, Sendable, CustomStringConvertible, Equatable {
    package let call: String
    package let errno: Int32
    package let path: String?

    package init(call: String, errno: Int32, path: String? = nil) {
        self.call = call
        self.errno = errno
        self.path = path
    }

    package var description: String {
        let reason = String(cString: strerror(errno))
        if let path { return "\(call)(\(path)): \(reason)" }
        return "\(call): \(reason)"
    }
}

/// Retries a system call on EINTR and turns -1 into a `SystemError`.
@inline(__always)
package func retryingSyscall<T: FixedWidthInteger>(
    _ call: String, path: String? = nil, _ body: () -> T
) throws(SystemError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let e = errno
        if e == EINTR { continue }
        throw SystemError(call: call, errno: e, path: path)
    }
}

/// An open file descriptor that closes itself.
package final class OwnedFD: Sendable {
    package let rawValue: Int32

    package init(_ rawValue: Int32) { self.rawValue = rawValue }

    /// Opens `path` read-only.
    package static func openForReading(_ path: String, flags: Int32 = 0) throws(SystemError) -> OwnedFD {
        let fd = try retryingSyscall("open", path: path) { open(path, O_RDONLY | O_CLOEXEC | flags) }
        return OwnedFD(fd)
    }

    /// Opens `path` for reading only if it is a regular file: it is first opened with O_PATH
    /// (which runs no driver and does not block on a FIFO), checked with fstat, and only then
    /// reopened for reading through /proc/self/fd. `nil` when it is not a regular file.
    package static func openRegularFile(_ path: String, at directory: Int32 = AT_FDCWD, noFollow: Bool = false)
        throws(SystemError) -> OwnedFD?
    {
        let flags = O_PATH_VALUE | O_CLOEXEC | (noFollow ? O_NOFOLLOW : 0)
        let handle = try OwnedFD(retryingSyscall("open", path: path) { openat(directory, path, flags) })
        guard try handle.status().isRegularFile else { return nil }
        return try openForReading("/proc/self/fd/\(handle.rawValue)")
    }

    deinit { close(rawValue) }

    package func status() throws(SystemError) -> stat {
        var st = Glibc.stat()
        _ = try retryingSyscall("fstat") { fstat(rawValue, &st) }
        return st
    }

    /// Reads up to `buffer.count` bytes; 0 means end of file.
    package func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        return try retryingSyscall("read") { Glibc.read(rawValue, base, buffer.count) }
    }

    /// Reads the whole file, refusing (with `nil`) one longer than `limit` bytes.
    package func readAll(limit: Int) throws(SystemError) -> [UInt8]? {
        var out: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { chunk.deallocate() }
        while true {
            let n = try read(into: chunk)
            if n == 0 { return out }
            if out.count + n > limit { return nil }
            out.append(contentsOf: chunk[0..<n])
        }
    }
}

/// Writes all of `bytes` to `fd` (at `offset` with pwrite(2), else at the file position), retrying
/// short writes and EINTR; `path` names the file in the error.
/// `path` is evaluated only for an error (it escapes an entry's name, which costs per call).
package func writeAll(
    _ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64? = nil, path: @autoclosure () -> String,
    calls: SystemCalls = .real
) throws(SystemError) {
    guard let base = bytes.baseAddress else { return }
    var written = 0
    while written < bytes.count {
        let n = calls.write(fd, base + written, bytes.count - written, offset.map { $0 + Int64(written) })
        if n < 0 {
            if errno == EINTR { continue }
            throw SystemError(call: "write", errno: errno, path: path())
        }
        written += n
    }
}

/// The same for `bytes[range]` of an array (all of it without `range`).
package func writeAll(
    _ fd: Int32, _ bytes: [UInt8], range: Range<Int>? = nil, at offset: Int64? = nil,
    path: @autoclosure () -> String, calls: SystemCalls = .real
) throws(SystemError) {
    // withUnsafeBytes rethrows untyped: keep the typed error in hand.
    let failure: SystemError? = bytes.withUnsafeBytes { raw in
        do throws(SystemError) {
            try writeAll(
                fd, UnsafeRawBufferPointer(rebasing: raw[range ?? 0..<raw.count]), at: offset, path: path(),
                calls: calls)
            return nil
        } catch {
            return error
        }
    }
    if let failure { throw failure }
}

/// `stat(2)` of a path (following symlinks), or `nil` with the errno when it fails.
package func fileStatus(_ path: String) -> Result<stat, SystemError> {
    var st = stat()
    while true {
        if stat(path, &st) == 0 { return .success(st) }
        if errno == EINTR { continue }
        return .failure(SystemError(call: "stat", errno: errno, path: path))
    }
}

extension stat {
    package var isDirectory: Bool { (st_mode & S_IFMT) == S_IFDIR }
    package var isRegularFile: Bool { (st_mode & S_IFMT) == S_IFREG }
}

/// O_PATH: Glibc's Swift overlay does not export it (it needs _GNU_SOURCE). 010000000 is its value
/// in the generic Linux ABI (x86-64, arm64 and the other architectures Swift runs on); the one
/// definition the layout reader and the applier share.
package let O_PATH_VALUE: Int32 = 0o10000000
/// AT_EMPTY_PATH (linux/fcntl.h), which Glibc's module does not export: an *at call on the fd itself.
package let AT_EMPTY_PATH_VALUE: Int32 = 0x1000
