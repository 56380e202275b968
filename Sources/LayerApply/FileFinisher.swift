import Glibc
import LayerStream
import OCIImage
import UnpackSystem

/// The metadata of one entry, taken from the tar entry on the applier's thread (where the
/// ownership policy and the per-layer state live), applied to an open fd on either thread.
struct EntryMetadata: Sendable {
    /// The entry's path as in the archive, for messages.
    var path: [UInt8]
    var kind: TarEntry.Kind
    /// nil: leave the owner as created.
    var owner: (uid: uid_t, gid: gid_t)?
    /// nil: the mode is already right.
    var mode: mode_t?
    var xattrs: [(name: String, value: [UInt8])]
    /// nil for directories, whose times are set when the layer is done.
    var times: (atime: timespec, mtime: timespec)?

    var displayPath: String { DisplayText.escaping(path) }

    /// Ownership, then mode (chown clears setuid/setgid), then xattrs (chown clears
    /// security.capability), then times, on an open fd.
    func apply(to fd: Int32, warn: (String) -> Void) throws(SystemError) {
        if let owner, fchown(fd, owner.uid, owner.gid) != 0 {
            throw SystemError(call: "fchown", errno: errno, path: displayPath)
        }
        if let mode, fchmod(fd, mode) != 0 {
            throw SystemError(call: "fchmod", errno: errno, path: displayPath)
        }
        for (name, value) in xattrs where value.withUnsafeBytes({ CSys.fsetxattr(fd, name, $0) }) != 0 {
            try xattrFailed(name, warn: warn)
        }
        if let times, withTimes(times.atime, times.mtime, { futimens(fd, $0) }) != 0 {
            throw SystemError(call: "futimens", errno: errno, path: displayPath)
        }
    }

    /// An xattr the file system or our privileges cannot take is a warning; any other failure
    /// is an error.
    func xattrFailed(_ name: String, warn: (String) -> Void) throws(SystemError) {
        let e = errno
        if e == ENOTSUP || e == EOPNOTSUPP || (e == EPERM && (!IDMapping.fullyPrivileged || kind == .symlink)) {
            warn("xattr \(name) on \(displayPath) not restored: \(String(cString: strerror(e)))")
            return
        }
        throw SystemError(call: "setxattr \(name)", errno: e, path: displayPath)
    }
}

/// Finishes small regular files on a second thread: writes the data the applier copied out of the
/// tar stream, then sets owner, mode, xattrs and times, and closes the file. The applier's thread
/// keeps everything that touches names (creating, replacing, whiteouts, links), so the order of
/// entries is kept where it matters; what is left is work on an fd that nothing else sees.
///
/// Per small file that moves everything but the open (the writes, owner and mode where they need
/// setting, xattrs, times and the close), and their kernel time, off the applier's thread. The
/// queue is bounded in files (each holds an fd) and in bytes. The first
/// failure stops the work (the rest of the queue is only closed) and is reported, naming its
/// file, at the next `submit` or at `drain`.
final class FileFinisher: @unchecked Sendable {
    struct Job {
        let file: OwnedFD
        let data: [UInt8]
        /// Where each block of `data` goes in the file (gaps are holes of a sparse file); empty
        /// when `data` starts at offset 0 in one piece.
        let blocks: [(offset: Int64, range: Range<Int>)]
        let size: Int64
        let metadata: EntryMetadata
    }

    /// Files at most this large are finished here; larger ones are written on the applier's
    /// thread (their time is in the writes, and copying them would only add to it).
    static let maxFileBytes: Int64 = 64 * 1024
    private let maxJobs = 64
    private let maxQueuedBytes = 4 << 20
    /// The worker is woken once this many jobs wait (or on `drain`): fewer wake-ups.
    private let wakeBatch = 8

    private let condition = ConditionLock()
    /// A taken job leaves `nil` behind, so that its fd is closed by the worker outside the lock.
    private var queue: [Job?] = []
    private var head = 0
    private var queuedBytes = 0
    private var busy = false
    private var workerWaiting = false
    private var submitterWaiting = false
    private var draining = false
    private var stopping = false
    private var exited = false
    private var failure: UnpackError?
    private let warn: @Sendable (String) -> Void

    /// Starts the thread; the owner must call `stop()` (the thread holds the finisher until then).
    init(warn: @escaping @Sendable (String) -> Void) throws(UnpackError) {
        self.warn = warn
        do {
            try startThread(name: "file finisher") { [self] in run() }
        } catch {
            exited = true
            throw PrefetchStream.threadFailure(error)
        }
    }

    private var pending: Int { queue.count - head }

    /// Queues `job`; waits while the queue is full. Throws the first failure of an earlier job.
    func submit(_ job: Job) throws(UnpackError) {
        condition.lock()
        defer { condition.unlock() }
        while failure == nil && (pending >= maxJobs || (pending > 0 && queuedBytes + job.data.count > maxQueuedBytes)) {
            if workerWaiting { condition.broadcast() }
            submitterWaiting = true
            condition.wait()
            submitterWaiting = false
        }
        if let failure { throw failure }
        queue.append(job)
        queuedBytes += job.data.count
        if workerWaiting && pending >= wakeBatch { condition.broadcast() }
    }

    /// Waits until every queued file is finished; throws the first failure.
    func drain() throws(UnpackError) {
        condition.lock()
        defer { condition.unlock() }
        draining = true
        defer { draining = false }
        if workerWaiting { condition.broadcast() }
        while pending > 0 || busy {
            submitterWaiting = true
            condition.wait()
            submitterWaiting = false
        }
        if let failure { throw failure }
    }

    /// Drops what is queued (closing the files) and waits for the thread to end. Idempotent.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !exited { condition.wait() }
        queue.removeAll()
        head = 0
        condition.unlock()
    }

    private func run() {
        condition.lock()
        while true {
            if pending == 0 {
                // Asleep until a batch waits (or a drain, or the end): fewer wake-ups.
                workerWaiting = true
                while !stopping && pending < wakeBatch && !((draining || submitterWaiting) && pending > 0) {
                    condition.wait()
                }
                workerWaiting = false
            }
            if stopping {
                exited = true
                condition.broadcast()
                condition.unlock()
                return
            }
            guard let job = queue[head] else { preconditionFailure("a finisher job was taken twice") }
            queue[head] = nil
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            }
            busy = true
            let failed = failure != nil
            condition.unlock()

            let bytes = job.data.count
            var error: UnpackError?
            if !failed {
                do {
                    try finish(job)
                } catch let failure {
                    error = failure.unpackError(
                        "finishing tar entry \(job.metadata.displayPath) failed (\(failure.call))",
                        context: .init(path: job.metadata.displayPath))
                }
            }
            _ = consume job  // closes the file here, not under the lock

            condition.lock()
            busy = false
            queuedBytes -= bytes
            if let error, failure == nil { failure = error }
            if submitterWaiting && (pending <= maxJobs / 2 || failure != nil || draining) { condition.broadcast() }
        }
    }

    private func finish(_ job: Job) throws(SystemError) {
        let fd = job.file.rawValue
        // The escaped name is made only for an error.
        if job.blocks.isEmpty {
            try writeAll(fd, job.data, at: 0, path: job.metadata.displayPath)
        } else {
            for block in job.blocks {
                try writeAll(fd, job.data, range: block.range, at: block.offset, path: job.metadata.displayPath)
            }
        }
        let end = job.blocks.last.map { $0.offset + Int64($0.range.count) } ?? Int64(job.data.count)
        if end < job.size && ftruncate(fd, off_t(job.size)) != 0 {
            throw SystemError(call: "ftruncate", errno: errno, path: job.metadata.displayPath)
        }
        try job.metadata.apply(to: fd, warn: warn)
    }
}
