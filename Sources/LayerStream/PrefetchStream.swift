import Glibc
import OCIImage
import UnpackSystem

/// Runs an upstream stage (blob read, digest, decompression, diff_id hashing) on its own thread,
/// a few buffers ahead of the consumer (tar parsing and the applier), so that the two halves of a
/// layer's work use both cores. The queue is bounded: memory does not grow with the layer.
///
/// With `verifying`, a third thread hashes each buffer while the consumer reads it (the diff_id
/// of a compressed layer: the producer then only reads, hashes the blob and decompresses), and
/// the end of the stream is delivered only once the hash matches.
///
/// An upstream error is delivered to the consumer at the point in the stream where it happened.
/// Dropping the stream stops the threads and waits for them.
package final class PrefetchStream: LendingByteStream {
    /// The upstream chain and the buffers in flight are handed between the two threads under
    /// `condition`; `upstream` itself is touched only by the producer thread once it has started.
    private final class Shared: @unchecked Sendable {
        let condition = ConditionLock()
        var free: [UnsafeMutableRawBufferPointer] = []
        var filled: [(UnsafeMutableRawBufferPointer, Int)] = []
        var filledHead = 0
        var ended = false
        var error: UnpackError?
        var cancelled = false
        var exited = false
        let upstream: any ByteStream
        /// Readers still to finish with each filled buffer (the consumer, and the hasher).
        var readers: [UnsafeMutableRawPointer: Int] = [:]
        /// Side hashing: the buffers still to hash, the expected digest, and the verdict.
        var toHash: [(UnsafeMutableRawBufferPointer, Int)] = []
        var toHashHead = 0
        let expected: Digest?
        var hashVerdict: UnpackError??
        var hasherExited = true

        init(upstream: any ByteStream, expected: Digest?) {
            self.upstream = upstream
            self.expected = expected
        }

        /// One reader is done with `buffer`; the last one returns it to the producer. Locked.
        func release(_ buffer: UnsafeMutableRawBufferPointer) {
            guard let base = buffer.baseAddress else { return }
            let left = (readers[base] ?? 1) - 1
            if left > 0 {
                readers[base] = left
            } else {
                readers[base] = nil
                free.append(buffer)
                condition.broadcast()
            }
        }
    }

    private let shared: Shared
    private var buffers: [UnsafeMutableRawBufferPointer] = []
    /// The buffer being consumed, its length and the read offset.
    private var current: (buffer: UnsafeMutableRawBufferPointer, count: Int, offset: Int)?
    /// The buffer handed out by `borrow`, returned to the producer at the next call.
    private var lent: UnsafeMutableRawBufferPointer?

    /// `threadNames` name the reader and hasher threads (tests give unique names to count them).
    package init(
        upstream: any ByteStream, bufferSize: Int = 1 << 20, depth: Int = 4, verifying expected: Digest? = nil,
        threadNames: (reader: String, hasher: String) = ("layer reader", "layer hasher")
    ) throws(UnpackError) {
        shared = Shared(upstream: upstream, expected: expected)
        for _ in 0..<max(depth, 2) {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 64)
            buffers.append(buffer)
            shared.free.append(buffer)
        }
        let shared = self.shared
        do {
            try startThread(name: threadNames.reader) { Self.produce(shared) }
        } catch {
            shared.exited = true  // deinit, which runs for a failed init, frees the buffers
            throw Self.threadFailure(error)
        }
        if expected != nil {
            shared.hasherExited = false
            do {
                try startThread(name: threadNames.hasher) { Self.hash(shared) }
            } catch {
                shared.hasherExited = true  // deinit stops the producer
                throw Self.threadFailure(error)
            }
        }
    }

    /// A helper thread the system refused (EAGAIN under a process limit).
    package static func threadFailure(_ error: SystemError) -> UnpackError {
        UnpackError(.internal, "cannot start a thread: \(error)", underlying: error)
    }

    deinit {
        shared.condition.lock()
        shared.cancelled = true
        shared.condition.broadcast()
        while !shared.exited || !shared.hasherExited { shared.condition.wait() }
        shared.condition.unlock()
        for buffer in buffers { buffer.deallocate() }
    }

    private static func produce(_ s: Shared) {
        let firstFill = 64 * 1024
        var handoffs = 0
        defer {
            s.condition.lock()
            s.exited = true
            s.condition.broadcast()
            s.condition.unlock()
        }
        while true {
            s.condition.lock()
            while s.free.isEmpty && !s.cancelled { s.condition.wait() }
            if s.cancelled {
                s.condition.unlock()
                return
            }
            let buffer = s.free.removeLast()
            s.condition.unlock()

            var count = 0
            var failure: UnpackError?
            // The first hand-offs are small (64 KiB, doubling up to the buffer size) so that the
            // consumer starts early; later buffers are filled whole to keep hand-offs rare.
            let target = min(buffer.count, firstFill << min(handoffs, 16))
            handoffs += 1
            do {
                // Fill to the target (decompressors may return less per call).
                while count < target {
                    let n = try s.upstream.read(
                        into: UnsafeMutableRawBufferPointer(rebasing: buffer[count..<target]))
                    if n == 0 { break }
                    count += n
                }
            } catch {
                failure = error
            }

            s.condition.lock()
            if count > 0 {
                s.filled.append((buffer, count))
                if s.expected != nil {
                    s.toHash.append((buffer, count))
                    if let base = buffer.baseAddress { s.readers[base] = 2 }
                }
            } else {
                s.free.append(buffer)
            }
            if let failure { s.error = failure }
            let done = failure != nil || count < target
            if done { s.ended = true }
            s.condition.broadcast()
            s.condition.unlock()
            if done { return }
        }
    }

    /// The hasher thread: hashes every filled buffer in order, then, once the producer ended
    /// without an error, records whether the digest matched.
    private static func hash(_ s: Shared) {
        guard let expected = s.expected else { return }
        var digester = Digester(expected.algorithm)
        s.condition.lock()
        defer {
            s.hasherExited = true
            s.condition.broadcast()
            s.condition.unlock()
        }
        while true {
            while s.toHashHead == s.toHash.count && !s.ended && !s.cancelled { s.condition.wait() }
            if s.cancelled { return }
            if s.toHashHead == s.toHash.count {
                // Ended: an upstream error is the consumer's to report; otherwise the verdict.
                if s.error == nil {
                    let actual = digester.finalize()
                    s.hashVerdict = .some(
                        actual == expected ? nil : DiffIDStream.mismatch(actual: actual, expected: expected))
                }
                return
            }
            let (buffer, count) = s.toHash[s.toHashHead]
            s.toHashHead += 1
            if s.toHashHead == s.toHash.count {
                s.toHash.removeAll(keepingCapacity: true)
                s.toHashHead = 0
            }
            s.condition.unlock()
            digester.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            s.condition.lock()
            s.release(buffer)
        }
    }

    package func read(into destination: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
        guard destination.count > 0 else { return 0 }
        returnLent()
        if current == nil {
            guard let next = try take() else { return 0 }
            current = (next.0, next.1, 0)
        }
        guard var chunk = current else { return 0 }
        let n = min(destination.count, chunk.count - chunk.offset)
        destination.copyMemory(
            from: UnsafeRawBufferPointer(rebasing: chunk.buffer[chunk.offset..<(chunk.offset + n)]))
        chunk.offset += n
        if chunk.offset == chunk.count {
            give(chunk.buffer)
            current = nil
        } else {
            current = chunk
        }
        return n
    }

    /// The next filled bytes in place, without a copy: tar parsing reads straight from the
    /// producer's buffers.
    package func borrow() throws(UnpackError) -> UnsafeRawBufferPointer {
        returnLent()
        if let chunk = current {
            current = nil
            lent = chunk.buffer
            return UnsafeRawBufferPointer(rebasing: chunk.buffer[chunk.offset..<chunk.count])
        }
        guard let next = try take() else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        lent = next.0
        return UnsafeRawBufferPointer(rebasing: next.0[0..<next.1])
    }

    private func returnLent() {
        if let buffer = lent {
            lent = nil
            give(buffer)
        }
    }

    /// The next filled buffer; `nil` at the end; the upstream's error where it happened.
    private func take() throws(UnpackError) -> (UnsafeMutableRawBufferPointer, Int)? {
        shared.condition.lock()
        defer { shared.condition.unlock() }
        while shared.filledHead == shared.filled.count && !shared.ended { shared.condition.wait() }
        if shared.filledHead < shared.filled.count {
            let next = shared.filled[shared.filledHead]
            shared.filledHead += 1
            if shared.filledHead == shared.filled.count {
                shared.filled.removeAll(keepingCapacity: true)
                shared.filledHead = 0
            }
            return next
        }
        if let error = shared.error { throw error }
        if shared.expected != nil {
            // The end comes only with the hasher's verdict on everything before it.
            while shared.hashVerdict == nil && !shared.hasherExited { shared.condition.wait() }
            guard case .some(let verdict) = shared.hashVerdict else {
                throw UnpackError(.internal, "the layer hasher stopped without a verdict")
            }
            if let mismatch = verdict { throw mismatch }
        }
        return nil
    }

    private func give(_ buffer: UnsafeMutableRawBufferPointer) {
        shared.condition.lock()
        shared.release(buffer)
        shared.condition.unlock()
    }
}
