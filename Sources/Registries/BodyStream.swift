import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import OCIImage
import UnpackSystem

/// A response body handed from the HTTP client's event loop to a reading thread, with
/// backpressure: past `highWater` buffered bytes the event loop is told to wait (a future it
/// completes when the reader has taken enough), so a slow consumer bounds the memory a fast
/// registry can fill, without blocking the event loop.
///
/// Body parts are copied into buffers of our own (`coalesce` bytes each, handed over when full, or
/// at once when the reader waits). A part is a view of NIO's read buffer (over TLS, of NIOSSL's
/// plaintext buffer), and a buffer held by a view is copied by NIO on its next write: kept as they
/// came, the parts of a TLS pull held 46 MiB of such copies for 4 MiB of body. The copy costs a
/// memcpy, and the reader gets fewer, larger pieces.
final class BodyStream: HTTPClientResponseDelegate, @unchecked Sendable {
    typealias Response = Void

    private let lock = ConditionLock()
    private var head: HTTPResponseHead?
    private var chunks = CircularBuffer<ByteBuffer>()
    /// The buffer body parts are copied into, until it is full or the reader takes it.
    private var pending: ByteBuffer?
    private var readerWaiting = false
    /// Whether the transfer ended while we held it back (a body opened ahead, or one the
    /// pipeline was slow to read, meets the client's 60 s idle-read timeout): not the server's fault.
    private(set) var failedWhilePaused = false
    private var buffered = 0
    private var finished = false
    private var failure: (any Error)?
    private var paused: EventLoopPromise<Void>?
    /// The request, for cancelling it.
    var task: HTTPClient.Task<Void>? {
        get {
            lock.lock()
            defer { lock.unlock() }
            return storedTask
        }
        set {
            lock.lock()
            storedTask = newValue
            lock.unlock()
        }
    }
    private var storedTask: HTTPClient.Task<Void>?

    /// Bytes buffered before the event loop waits.
    static let highWater = 4 << 20
    /// The size of the buffers body parts are gathered in.
    static let coalesce = 256 << 10
    private static let allocator = ByteBufferAllocator()

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        lock.lock()
        self.head = head
        lock.broadcast()
        lock.unlock()
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        lock.lock()
        var part = buffer
        buffered += part.readableBytes
        while let piece = part.readSlice(length: min(part.readableBytes, pending?.writableBytes ?? Self.coalesce)),
            piece.readableBytes > 0
        {
            var gathering = pending ?? Self.allocator.buffer(capacity: Self.coalesce)
            pending = nil  // one reference: the write below does not copy the buffer again
            gathering.writeImmutableBuffer(piece)
            if gathering.writableBytes == 0 {
                chunks.append(gathering)
            } else {
                pending = gathering
            }
        }
        if readerWaiting { lock.broadcast() }
        guard buffered >= Self.highWater else {
            lock.unlock()
            return task.eventLoop.makeSucceededVoidFuture()
        }
        let promise = task.eventLoop.makePromise(of: Void.self)
        paused = promise
        lock.unlock()
        return promise.futureResult
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {
        lock.lock()
        finished = true
        lock.broadcast()
        lock.unlock()
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) {
        lock.lock()
        if failure == nil {
            failure = error
            failedWhilePaused = paused != nil
        }
        finished = true
        let waiting = paused
        paused = nil
        lock.broadcast()
        lock.unlock()
        waiting?.fail(error)
    }

    /// The response head, once it arrived (or the error that ended the request first).
    func waitForHead() throws -> HTTPResponseHead {
        lock.lock()
        defer { lock.unlock() }
        while head == nil && !finished { lock.wait() }
        if let head { return head }
        throw failure ?? UnpackError(.io, "the connection closed before a response")
    }

    /// The next piece of the body; nil at its end. Throws what ended the transfer early (after
    /// the bytes that came before it).
    func next() throws -> ByteBuffer? {
        lock.lock()
        while chunks.isEmpty && (pending?.readableBytes ?? 0) == 0 && !finished {
            readerWaiting = true
            lock.wait()
        }
        readerWaiting = false
        let chunk: ByteBuffer
        if let next = chunks.popFirst() {
            // Taken out, not only passed: a consumed buffer must not stay referenced.
            chunk = next
        } else if let gathered = pending, gathered.readableBytes > 0 {
            chunk = gathered
            pending = nil
        } else {
            let error = failure
            lock.unlock()
            if let error { throw error }
            return nil
        }
        buffered -= chunk.readableBytes
        var resume: EventLoopPromise<Void>?
        if buffered < Self.highWater / 2 {
            resume = paused
            paused = nil
        }
        lock.unlock()
        resume?.succeed(())
        return chunk
    }

    func cancel() {
        task?.cancel()
        lock.lock()
        let waiting = paused
        paused = nil
        lock.unlock()
        waiting?.fail(UnpackError(.interrupted, "download cancelled"))
    }
}

/// A blob's bytes from a registry, as the pipeline reads them: a broken transfer resumes with a
/// `Range` request where it stopped (at most three times; the pipeline's digest check covers the
/// joined bytes), and a body longer than the descriptor's size is refused at once (an endless
/// body never fills memory or disk).
final class RegistryBlobStream: ByteStream {
    private let client: RegistryClient
    private let descriptor: Descriptor
    private var body: BodyStream
    private var current: ByteBuffer?
    private var delivered: Int64 = 0
    private var resumes = 0
    private var done = false

    static let maxResumes = 3

    init(client: RegistryClient, descriptor: Descriptor) throws(UnpackError) {
        self.client = client
        self.descriptor = descriptor
        body = try client.download(descriptor.digest, offset: 0)
    }

    deinit {
        if !done { body.cancel() }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
        while true {
            if var chunk = current, chunk.readableBytes > 0 {
                let n = min(buffer.count, chunk.readableBytes)
                chunk.withUnsafeReadableBytes { source in
                    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[..<n]))
                }
                chunk.moveReaderIndex(forwardBy: n)
                current = chunk
                delivered += Int64(n)
                guard delivered <= descriptor.size else {
                    body.cancel()
                    done = true
                    throw UnpackError(
                        .sizeMismatch,
                        "\(client.place): blob \(descriptor.digest) is longer than its descriptor's size \(descriptor.size)",
                        context: .init(digest: descriptor.digest, mediaType: descriptor.mediaType))
                }
                return n
            }
            do {
                if let next = try body.next() {
                    current = next
                    continue
                }
                done = true
                return 0
            } catch {
                // A transfer that broke before the descriptor's size resumes where it stopped. One
                // that timed out while we held it back does not count against the resumes.
                let ours = body.failedWhilePaused
                guard delivered < descriptor.size, ours || resumes < Self.maxResumes else {
                    done = true
                    throw UnpackError(
                        .io,
                        "\(client.place): the download of blob \(descriptor.digest) broke after \(delivered) bytes: \(RegistryClient.describe(error))",
                        context: .init(digest: descriptor.digest, mediaType: descriptor.mediaType))
                }
                if !ours { resumes += 1 }
                body.cancel()
                body = try client.download(descriptor.digest, offset: delivered)
                current = nil
            }
        }
    }
}
