import Glibc
import LayerStream
import OCIImage
import TarArchive
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
    /// Set the xattrs before the mode (rootless: a mode without owner write would refuse them).
    var xattrsBeforeMode = false

    var displayPath: String { DisplayText.escaping(path) }

    /// Ownership, then mode (chown clears setuid/setgid), then xattrs (chown clears
    /// security.capability), then times, on an open fd.
    func apply(to fd: Int32, warn: (String) -> Void) throws(SystemError) {
        if let owner, fchown(fd, owner.uid, owner.gid) != 0 {
            throw SystemError(call: "fchown", errno: errno, path: displayPath)
        }
        if xattrsBeforeMode { try setXattrs(fd, warn: warn) }
        if let mode, fchmod(fd, mode) != 0 {
            throw SystemError(call: "fchmod", errno: errno, path: displayPath)
        }
        if !xattrsBeforeMode { try setXattrs(fd, warn: warn) }
        if let times, withTimes(times.atime, times.mtime, { futimens(fd, $0) }) != 0 {
            throw SystemError(call: "futimens", errno: errno, path: displayPath)
        }
    }

    private func setXattrs(_ fd: Int32, warn: (String) -> Void) throws(SystemError) {
        for (name, value) in xattrs where value.withUnsafeBytes({ CSys.fsetxattr(fd, name, $0) }) != 0 {
            try xattrFailed(name, warn: warn)
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
final class FileFinisher {
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

    /// Bounded in files (each holds an fd) and in bytes; the worker is woken once eight jobs wait
    /// (or on `drain`): fewer wake-ups. A job's bytes count until it is finished.
    private let jobs = BoundedQueue<Job, UnpackError>(
        capacity: 64, weightLimit: 4 << 20, wakeBatch: 8, tracksCompletion: true)
    private var thread: ThreadHandle?

    /// Starts the thread; the owner must call `stop()` (the thread runs until then).
    init(warn: @escaping @Sendable (String) -> Void, calls: SystemCalls = .real) throws(UnpackError) {
        let jobs = self.jobs
        do {
            thread = try startThread(name: "file finisher") { Self.run(jobs, warn: warn, calls: calls) }
        } catch {
            throw PrefetchStream.threadFailure(error)
        }
    }

    /// Queues `job`; waits while the queue is full. Throws the first failure of an earlier job.
    func submit(_ job: Job) throws(UnpackError) {
        try jobs.push(job, weight: job.data.count)
    }

    /// Waits until every queued file is finished; throws the first failure.
    func drain() throws(UnpackError) {
        try jobs.waitUntilDone()
    }

    /// Drops what is queued (closing the files) and waits for the thread to end. Idempotent.
    func stop() {
        jobs.cancel()
        thread?.join()
        thread = nil
    }

    private static func run(_ jobs: BoundedQueue<Job, UnpackError>, warn: (String) -> Void, calls: SystemCalls) {
        // The applier never ends the queue with an error: it is stopped by cancellation.
        var finished: Int?  // the weight of the job finished last, completed with the next pop
        while let job = try? jobs.pop(completing: finished) {
            let bytes = job.data.count
            do {
                try finish(job, warn: warn, calls: calls)
            } catch let failure {
                // The first failure stops the work: the rest of the queue is only closed.
                jobs.refuse(
                    failure.unpackError(
                        "finishing tar entry \(job.metadata.displayPath) failed (\(failure.call))",
                        context: .init(path: job.metadata.displayPath)))
            }
            _ = consume job  // closes the file before the job counts as done
            finished = bytes
        }
        // The last pop completed the last job.
    }

    private static func finish(_ job: Job, warn: (String) -> Void, calls: SystemCalls) throws(SystemError) {
        let fd = job.file.rawValue
        // The escaped name is made only for an error.
        if job.blocks.isEmpty {
            try writeAll(fd, job.data, at: 0, path: job.metadata.displayPath, calls: calls)
        } else {
            for block in job.blocks {
                try writeAll(
                    fd, job.data, range: block.range, at: block.offset, path: job.metadata.displayPath, calls: calls)
            }
        }
        let end = job.blocks.last.map { $0.offset + Int64($0.range.count) } ?? Int64(job.data.count)
        if end < job.size && ftruncate(fd, off_t(job.size)) != 0 {
            throw SystemError(call: "ftruncate", errno: errno, path: job.metadata.displayPath)
        }
        try job.metadata.apply(to: fd, warn: warn)
    }
}
