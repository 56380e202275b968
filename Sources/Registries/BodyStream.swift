import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import OCIImage
import UnpackSystem

/// A response body handed from the HTTP client's event loop to a reading thread, with
/// backpressure: past `highWater` buffered bytes the event loop is told to wait (a future it
/// completes when the reader has taken enough), so a slow consumer bounds the memory a fast
/// registry can fill, without blocking the event loop.
final class BodyStream: HTTPClientResponseDelegate, @unchecked Sendable {
    typealias Response = Void

    private let lock = ConditionLock()
    private var head: HTTPResponseHead?
    private var chunks: [ByteBuffer] = []
    private var first = 0
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

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        lock.lock()
        self.head = head
        lock.broadcast()
        lock.unlock()
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        lock.lock()
        chunks.append(buffer)
        buffered += buffer.readableBytes
        lock.broadcast()
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
        if failure == nil { failure = error }
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

    /// The next piece of the body; nil at its end. Throws what ended the transfer early.
    func next() throws -> ByteBuffer? {
        lock.lock()
        while first == chunks.count && !finished { lock.wait() }
        if first == chunks.count {
            let error = failure
            lock.unlock()
            if let error { throw error }
            return nil
        }
        let chunk = chunks[first]
        first += 1
        if first > 64 && first * 2 > chunks.count {
            chunks.removeFirst(first)
            first = 0
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
                // A transfer that broke before the descriptor's size resumes where it stopped.
                guard delivered < descriptor.size, resumes < Self.maxResumes else {
                    done = true
                    throw UnpackError(
                        .io,
                        "\(client.place): the download of blob \(descriptor.digest) broke after \(delivered) bytes: \(RegistryClient.describe(error))",
                        context: .init(digest: descriptor.digest, mediaType: descriptor.mediaType))
                }
                resumes += 1
                body.cancel()
                body = try client.download(descriptor.digest, offset: delivered)
                current = nil
            }
        }
    }
}
