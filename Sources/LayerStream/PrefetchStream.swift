import Glibc
import OCIImage
import TarArchive
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
    /// Bytes `count` of `buffer` were filled by the reader thread.
    private struct Chunk {
        let buffer: UnsafeMutableRawBufferPointer
        let count: Int
    }

    /// Reader → consumer: filled buffers, then the end or the upstream's error.
    private let filled: BoundedQueue<Chunk, UnpackError>
    /// Reader → hasher: the same buffers, when verifying.
    private let toHash: BoundedQueue<Chunk, UnpackError>?
    /// Consumer and hasher → reader: buffers they are done with (each returns every buffer once).
    private let returned: BoundedQueue<UnsafeMutableRawBufferPointer, Never>
    /// Hasher → consumer: the digest of everything the reader delivered.
    private let verdict: BoundedQueue<Digest, Never>?
    private let expected: Digest?
    private var threads: [ThreadHandle] = []
    private var buffers: [UnsafeMutableRawBufferPointer] = []
    /// The buffer being consumed, its length and the read offset.
    private var current: (buffer: UnsafeMutableRawBufferPointer, count: Int, offset: Int)?
    /// The buffer handed out by `borrow`, returned to the producer at the next call.
    private var lent: UnsafeMutableRawBufferPointer?
    /// The hasher's verdict, once taken.
    private var verdictTaken: Result<Void, UnpackError>?

    /// `threadNames` name the reader and hasher threads (tests give unique names to count them).
    package init(
        upstream: any ByteStream, bufferSize: Int = 1 << 20, depth: Int = 4, verifying expected: Digest? = nil,
        threadNames: (reader: String, hasher: String) = ("layer reader", "layer hasher")
    ) throws(UnpackError) {
        let depth = max(depth, 2)
        for _ in 0..<depth {
            buffers.append(UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 64))
        }
        // No push can block: there are only `depth` buffers, each returned once per reader.
        filled = BoundedQueue(capacity: depth)
        returned = BoundedQueue(capacity: 2 * depth)
        toHash = expected == nil ? nil : BoundedQueue(capacity: depth)
        verdict = expected == nil ? nil : BoundedQueue(capacity: 1)
        self.expected = expected
        let upstream = UncheckedTransfer(upstream)
        let (buffers, filled, toHash, returned) = (UncheckedTransfer(buffers), filled, toHash, returned)
        do {
            threads.append(
                try startThread(name: threadNames.reader) {
                    Self.produce(upstream.value, buffers.value, filled, toHash, returned)
                })
            if let toHash, let verdict, let expected {
                threads.append(
                    try startThread(name: threadNames.hasher) {
                        Self.hash(toHash, returned, verdict, expected.algorithm)
                    })
            }
        } catch {
            throw Self.threadFailure(error)  // deinit, which runs for a failed init, stops the reader
        }
    }

    /// A helper thread the system refused (EAGAIN under a process limit).
    package static func threadFailure(_ error: SystemError) -> UnpackError {
        UnpackError(.internal, "cannot start a thread: \(error)", underlying: error)
    }

    deinit {
        filled.cancel()
        toHash?.cancel()
        returned.cancel()
        verdict?.cancel()
        for thread in threads { thread.join() }
        for buffer in buffers { buffer.deallocate() }
    }

    /// The reader thread: fills free buffers from the upstream chain and queues them for the
    /// consumer (and the hasher); the upstream is touched by this thread only.
    private static func produce(
        _ upstream: any ByteStream, _ buffers: [UnsafeMutableRawBufferPointer],
        _ filled: BoundedQueue<Chunk, UnpackError>, _ toHash: BoundedQueue<Chunk, UnpackError>?,
        _ returned: BoundedQueue<UnsafeMutableRawBufferPointer, Never>
    ) {
        let readers = toHash == nil ? 1 : 2
        var free = buffers
        /// Returns counted per buffer: a buffer is free again once every reader gave it back.
        var returns: [UnsafeMutableRawPointer: Int] = [:]
        let firstFill = 64 * 1024
        var handoffs = 0
        while true {
            while free.isEmpty {
                guard let buffer = returned.pop(), let base = buffer.baseAddress else { return }  // cancelled
                let count = (returns[base] ?? 0) + 1
                if count == readers {
                    returns[base] = nil
                    free.append(buffer)
                } else {
                    returns[base] = count
                }
            }
            let buffer = free.removeLast()
            var count = 0
            // The first hand-offs are small (64 KiB, doubling up to the buffer size) so that the
            // consumer starts early; later buffers are filled whole to keep hand-offs rare.
            let target = min(buffer.count, firstFill << min(handoffs, 16))
            handoffs += 1
            do {
                // Fill to the target (decompressors may return less per call).
                while count < target {
                    let n = try upstream.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[count..<target]))
                    if n == 0 { break }
                    count += n
                }
            } catch {
                if count > 0 { deliver(Chunk(buffer: buffer, count: count), filled, toHash) }
                filled.finish(throwing: error)
                toHash?.finish(throwing: error)
                return
            }
            if count > 0 {
                if !deliver(Chunk(buffer: buffer, count: count), filled, toHash) { return }
            } else {
                free.append(buffer)
            }
            if count < target {
                filled.finish()
                toHash?.finish()
                return
            }
        }
    }

    /// Queues a filled buffer for the consumer and the hasher; false once cancelled.
    @discardableResult
    private static func deliver(
        _ chunk: Chunk, _ filled: BoundedQueue<Chunk, UnpackError>, _ toHash: BoundedQueue<Chunk, UnpackError>?
    ) -> Bool {
        // Neither queue refuses: only cancellation stops a push.
        guard (try? filled.push(chunk)) == true else { return false }
        return (try? toHash?.push(chunk)) ?? true
    }

    /// The hasher thread: hashes every filled buffer in order and, once the reader ended without
    /// an error, hands the digest to the consumer.
    private static func hash(
        _ toHash: BoundedQueue<Chunk, UnpackError>, _ returned: BoundedQueue<UnsafeMutableRawBufferPointer, Never>,
        _ verdict: BoundedQueue<Digest, Never>, _ algorithm: Digest.Algorithm
    ) {
        var digester = Digester(algorithm)
        while true {
            let next: Chunk?
            do {
                next = try toHash.pop()
            } catch {
                // The reader failed: the error is the consumer's to report, there is no verdict.
                verdict.finish()
                return
            }
            guard let chunk = next else {
                verdict.push(digester.finalize())
                verdict.finish()
                return
            }
            digester.update(UnsafeRawBufferPointer(rebasing: chunk.buffer[0..<chunk.count]))
            returned.push(chunk.buffer)
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
        if let chunk = try filled.pop() { return (chunk.buffer, chunk.count) }
        if let verdict, let expected {
            // The end comes only with the hasher's verdict on everything before it, taken once
            // (a later read at the end gets the same answer).
            if verdictTaken == nil {
                verdictTaken =
                    verdict.pop().map { actual in
                        actual == expected
                            ? .success(()) : .failure(DiffIDStream.mismatch(actual: actual, expected: expected))
                    } ?? .failure(UnpackError(.internal, "the layer hasher stopped without a verdict"))
            }
            if case .failure(let error) = verdictTaken { throw error }
        }
        return nil
    }

    private func give(_ buffer: UnsafeMutableRawBufferPointer) {
        returned.push(buffer)
    }
}

/// Hands a value that is not `Sendable` to the one thread that will use it from then on.
private struct UncheckedTransfer<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
