import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import OCIImage
import UnpackSystem

/// The bounds on time that every registry transfer meets (``RegistryOptions/minimumRate``,
/// ``RegistryOptions/commandTimeout``): a transfer oci-unpack waits for must move at least
/// `minimumRate` bytes a second over `window` seconds of waiting, and everything must be done by
/// `deadline`.
struct TransferBounds: Sendable {
    let minimumRate: Int
    let window: Double
    /// `--command-timeout`'s end, if any.
    let deadline: ContinuousClock.Instant?
    /// `--command-timeout` as given, for messages.
    let commandTimeout: Double?
    /// A response head must arrive within this many seconds of the request (the HTTP client's
    /// idle-read timeout does not see a server that trickles its head).
    static let headTimeout = 60.0

    init(_ options: RegistryOptions) {
        minimumRate = max(options.minimumRate, 0)
        window = Double(max(options.minimumRateWindow, 1))
        commandTimeout = options.commandTimeout
        deadline = options.commandTimeout.map { .now + .milliseconds(Int64($0 * 1000)) }
    }

    /// Seconds left before the overall deadline (`nil`: none).
    var remaining: Double? {
        deadline.map { now in
            let left = ContinuousClock.now.duration(to: now).components
            return max(Double(left.seconds) + Double(left.attoseconds) / 1e18, 0)
        }
    }
}

/// Why a transfer was given up on time.
enum TransferTimeout: Error, CustomStringConvertible {
    /// Fewer than `rate` bytes a second over `window` seconds: counted as a failed connection.
    case tooSlow(rate: Int, window: Double, moved: Int64)
    /// A request's own deadline passed (the probe's 5 s per scheme, a response head's 60 s).
    case requestTimedOut(seconds: Double)
    /// `--command-timeout` passed: final.
    case commandTimeout(seconds: Double)

    var description: String {
        switch self {
        case .tooSlow(let rate, let window, let moved):
            "too slow: \(moved) bytes in \(Int(window)) s, below the minimum of \(rate) bytes/s (--speed-limit, --speed-time)"
        case .requestTimedOut(let seconds): "no answer within \(Int(seconds)) s"
        case .commandTimeout(let seconds): "the --command-timeout of \(seconds.formattedSeconds) passed"
        }
    }
}

extension Double {
    /// `90 s`, `1.5 s`.
    var formattedSeconds: String {
        self == rounded() ? "\(Int(self)) s" : "\(self) s"
    }
}

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
    private let bounds: TransferBounds
    /// The earlier of the overall deadline and this request's own, and whether it is the overall one.
    private let deadline: (at: ContinuousClock.Instant, overall: Bool)?
    private let headDeadline: ContinuousClock.Instant
    /// This request's own seconds, for messages.
    private let requestSeconds: Double?
    /// Body bytes received so far.
    private var received: Int64 = 0
    /// Where the current rate window began (while the reader waits), and `received` then.
    private var windowStart: ContinuousClock.Instant?
    private var windowReceived: Int64 = 0

    /// A body bounded by `bounds` and, when given, by `requestSeconds` from now.
    init(bounds: TransferBounds, requestSeconds: Double? = nil) {
        self.bounds = bounds
        self.requestSeconds = requestSeconds
        let now = ContinuousClock.now
        let own = requestSeconds.map { now + .milliseconds(Int64($0 * 1000)) }
        switch (own, bounds.deadline) {
        case (let own?, let overall?): deadline = own < overall ? (own, false) : (overall, true)
        case (let own?, nil): deadline = (own, false)
        case (nil, let overall?): deadline = (overall, true)
        case (nil, nil): deadline = nil
        }
        headDeadline = now + .seconds(Int64(requestSeconds ?? TransferBounds.headTimeout))
    }
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
        received += Int64(part.readableBytes)
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

    /// The response head, once it arrived (or the error that ended the request first, or the
    /// deadline that passed first).
    func waitForHead() throws -> HTTPResponseHead {
        lock.lock()
        while head == nil && !finished {
            let now = ContinuousClock.now
            var timeout = overdue(now)
            if timeout == nil, now >= headDeadline {
                timeout = TransferTimeout.requestTimedOut(seconds: requestSeconds ?? TransferBounds.headTimeout)
            }
            if let timeout {
                lock.unlock()
                cancel()
                throw timeout
            }
            lock.wait(seconds: 0.25)
        }
        defer { lock.unlock() }
        if let head { return head }
        throw failure ?? UnpackError(.io, "the connection closed before a response")
    }

    /// What ends a wait at `now`: a terminating signal, a passed deadline; the lock is held.
    private func overdue(_ now: ContinuousClock.Instant) -> (any Error)? {
        if let signal = Interrupts.pending {
            return UnpackError(.interrupted, "interrupted by signal \(signal) (\(Interrupts.name(of: signal)))")
        }
        guard let deadline, now >= deadline.at else { return nil }
        if deadline.overall { return TransferTimeout.commandTimeout(seconds: bounds.commandTimeout ?? 0) }
        return TransferTimeout.requestTimedOut(seconds: requestSeconds ?? 0)
    }

    /// Whether the reader, waiting since the window began, has been starved below the minimum
    /// rate for a whole window; the lock is held. Time when the reader did not wait (a body
    /// buffered ahead of a slow pipeline) is no fault of the server's and is not counted.
    private func tooSlow(_ now: ContinuousClock.Instant) -> TransferTimeout? {
        guard bounds.minimumRate > 0 else { return nil }
        guard let start = windowStart else {
            windowStart = now
            windowReceived = received
            return nil
        }
        let elapsed = start.duration(to: now)
        guard elapsed >= .milliseconds(Int64(bounds.window * 1000)) else { return nil }
        let moved = received - windowReceived
        if Double(moved) < Double(bounds.minimumRate) * bounds.window {
            return .tooSlow(rate: bounds.minimumRate, window: bounds.window, moved: moved)
        }
        windowStart = now
        windowReceived = received
        return nil
    }

    /// The next piece of the body; nil at its end. Throws what ended the transfer early (after
    /// the bytes that came before it).
    func next() throws -> ByteBuffer? {
        lock.lock()
        // Bytes waiting already: the server is ahead of the reader, and the window starts anew.
        if !chunks.isEmpty || (pending?.readableBytes ?? 0) > 0 { windowStart = nil }
        while chunks.isEmpty && (pending?.readableBytes ?? 0) == 0 && !finished {
            let now = ContinuousClock.now
            if let timeout = overdue(now) ?? tooSlow(now) {
                readerWaiting = false
                lock.unlock()
                cancel()
                throw timeout
            }
            readerWaiting = true
            lock.wait(seconds: 0.25)
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
                // The overall deadline and a signal end the download; anything else that broke it
                // before the descriptor's size (a connection, a rate below the minimum) resumes
                // where it stopped. One that timed out while we held it back does not count
                // against the resumes.
                if let final = RegistryClient.finalFailure(
                    error, place: client.place, what: "blob \(descriptor.digest)")
                {
                    done = true
                    throw final
                }
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
