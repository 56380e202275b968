import Glibc
import LayerStream
import OCIImage
import TarArchive
import Testing
import UnpackSystem

@Suite struct CodecTests {
    static let sample: [UInt8] = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / 7) }

    static func gunzip(_ implementation: LayerDecoder.GzipImplementation, _ bytes: [UInt8]) throws(UnpackError)
        -> any ByteStream
    {
        switch implementation {
        case .isal: IsalGzipDecompressor(upstream: MemoryStream(bytes))
        case .zlib: try GzipDecompressor(upstream: MemoryStream(bytes))
        }
    }

    @Test(arguments: LayerDecoder.GzipImplementation.allCases, [1, 3, 40])
    func gzipRoundTripWithMembers(implementation: LayerDecoder.GzipImplementation, members: Int) throws {
        let compressed = GzipCompressor.compress(Self.sample, members: members)
        let out = try Self.gunzip(implementation, compressed).readAll()
        #expect(out == Self.sample)
    }

    @Test(arguments: LayerDecoder.GzipImplementation.allCases)
    func gzipErrors(implementation: LayerDecoder.GzipImplementation) throws {
        let compressed = GzipCompressor.compress(Self.sample, members: 2)
        let truncated = #expect(throws: UnpackError.self) {
            _ = try Self.gunzip(implementation, Array(compressed.dropLast(100))).readAll()
        }
        #expect(truncated?.code == .corruptLayer)
        #expect(truncated?.message.contains("truncated") == true, "\(String(describing: truncated))")
        let trailing = #expect(throws: UnpackError.self) {
            _ = try Self.gunzip(implementation, compressed + Array("garbage".utf8)).readAll()
        }
        #expect(trailing?.message.contains("trailing data") == true, "\(String(describing: trailing))")
        var flipped = compressed
        flipped[flipped.count - 6] ^= 0xff  // the last member's CRC-32
        let checksum = #expect(throws: UnpackError.self) { _ = try Self.gunzip(implementation, flipped).readAll() }
        #expect(checksum?.code == .corruptLayer)
        let empty = try Self.gunzip(implementation, []).readAll()
        #expect(empty.isEmpty)
    }

    @Test func prefetchDeliversTheStreamAndItsErrorInPlace() throws {
        let compressed = ZstdCompressor.compress(Self.sample, frames: 3)
        let whole = try PrefetchStream(
            upstream: ZstdDecompressor(upstream: MemoryStream(compressed)), bufferSize: 4096, depth: 2
        )
        .readAll()
        #expect(whole == Self.sample)
        let broken = try PrefetchStream(
            upstream: try ZstdDecompressor(upstream: MemoryStream(Array(compressed.dropLast(10)))), bufferSize: 4096,
            depth: 3)
        var received: [UInt8] = []
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1000, alignment: 1)
        defer { scratch.deallocate() }
        let error = #expect(throws: UnpackError.self) {
            while true {
                let n = try broken.read(into: scratch)
                if n == 0 { break }
                received += scratch[0..<n]
            }
        }
        #expect(error?.message.contains("truncated") == true)
        #expect(received.count > 150_000, "the data before the error arrives first")
        #expect(Array(Self.sample.prefix(received.count)) == received)
    }

    /// Borrowed buffers (what the tar reader uses) and copying reads, mixed, give the stream in
    /// order; the buffers ramp up from 64 KiB; an error arrives after the data before it.
    @Test func prefetchLendsItsBuffersInOrder() throws {
        let big = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        let stream = try PrefetchStream(upstream: MemoryStream(big), bufferSize: 1 << 20, depth: 3)
        var received: [UInt8] = []
        var sizes: [Int] = []
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1000, alignment: 1)
        defer { scratch.deallocate() }
        var turn = 0
        while true {
            turn += 1
            if turn % 3 == 0 {
                let n = try stream.read(into: scratch)
                if n == 0 { break }
                received += scratch[0..<n]
            } else {
                let chunk = try stream.borrow()
                if chunk.isEmpty { break }
                sizes.append(chunk.count)
                received += chunk
            }
        }
        #expect(received == big)
        #expect(sizes.first == 64 << 10, "the first hand-off is small: \(sizes.prefix(4))")
        #expect(sizes.max() == 1 << 20)

        let compressed = ZstdCompressor.compress(Self.sample, frames: 3)
        let broken = try PrefetchStream(
            upstream: try ZstdDecompressor(upstream: MemoryStream(Array(compressed.dropLast(10)))), bufferSize: 4096,
            depth: 3)
        var before: [UInt8] = []
        let error = #expect(throws: UnpackError.self) {
            while true {
                let chunk = try broken.borrow()
                if chunk.isEmpty { break }
                before += chunk
            }
        }
        #expect(error?.message.contains("truncated") == true)
        #expect(Array(Self.sample.prefix(before.count)) == before && before.count > 150_000)
    }

    /// The side hasher: the right digest lets the stream end; a wrong one turns the end into a
    /// mismatch after all the data; an upstream error wins over the verdict; dropping the stream
    /// early stops both threads.
    @Test func prefetchVerifiesOnItsHasherThread() throws {
        let right = Digest.of(Self.sample)
        let wrong = Digest.of([1, 2, 3])
        let good = try PrefetchStream(upstream: MemoryStream(Self.sample), bufferSize: 4096, depth: 3, verifying: right)
        #expect(try good.readAll() == Self.sample)
        #expect(try good.borrow().isEmpty, "the end, read again, is still the end")
        let bad = try PrefetchStream(upstream: MemoryStream(Self.sample), bufferSize: 4096, depth: 3, verifying: wrong)
        var before: [UInt8] = []
        let mismatch = #expect(throws: UnpackError.self) {
            while true {
                let chunk = try bad.borrow()
                if chunk.isEmpty { break }
                before += chunk
            }
        }
        #expect(before == Self.sample, "every byte arrives before the verdict")
        #expect(mismatch?.code == .digestMismatch)
        #expect(mismatch?.message.contains("hashes to \(right), but the config's diff_id is \(wrong)") == true)
        #expect(throws: UnpackError.self, "the mismatch, read again, is still the mismatch") {
            _ = try bad.borrow()
        }
        let compressed = ZstdCompressor.compress(Self.sample, frames: 3)
        let truncated = try PrefetchStream(
            upstream: try ZstdDecompressor(upstream: MemoryStream(Array(compressed.dropLast(10)))), bufferSize: 4096,
            depth: 3, verifying: right)
        let error = #expect(throws: UnpackError.self) { _ = try truncated.readAll() }
        #expect(error?.message.contains("truncated") == true, "\(String(describing: error))")
        for _ in 0..<20 {
            let early = try PrefetchStream(
                upstream: MemoryStream(Self.sample), bufferSize: 1024, depth: 2, verifying: right)
            #expect(try early.borrow().count > 0)
        }
    }

    /// The blob stream's own size checks, with a descriptor that disagrees with the source's bytes
    /// (no size check at open is in the way here): bytes that end early, and bytes that go on.
    @Test(arguments: [(Int64(-3), "went past its descriptor's size"), (3, "ended before its descriptor's size")])
    func blobStreamChecksTheSizeWhileReading(delta: Int64, message: String) throws {
        let bytes = Array(Self.sample.prefix(100_000))
        let descriptor = Descriptor(
            mediaType: .ociLayer, digest: Digest.of(bytes), size: Int64(bytes.count) + delta)
        let stream = BlobStream(upstream: MemoryStream(bytes), descriptor: descriptor)
        let error = #expect(throws: UnpackError.self) { _ = try stream.readAll() }
        #expect(error?.code == .sizeMismatch)
        #expect(error?.message.contains(message) == true, "\(String(describing: error))")
    }

    /// Threads of this process whose name (as /proc shows it, 15 bytes at most) is `name`.
    static func threads(named name: String) -> Int {
        guard let tasks = opendir("/proc/self/task") else { return -1 }
        defer { closedir(tasks) }
        var count = 0
        while let entry = readdir(tasks) {
            let tid = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard tid.first?.isNumber == true else { continue }
            let fd = open("/proc/self/task/\(tid)/comm", O_RDONLY)
            guard fd >= 0 else { continue }
            var bytes = [UInt8](repeating: 0, count: 32)
            let n = read(fd, &bytes, bytes.count)
            close(fd)
            if n > 0 && String(decoding: bytes[..<n], as: UTF8.self) == name + "\n" { count += 1 }
        }
        return count
    }

    /// Dropping a stream whose reader and hasher threads are blocked on a full queue stops both:
    /// the threads, named uniquely here, are counted in /proc/self/task before and after.
    @Test(.timeLimit(.minutes(1)))
    func droppingAPrefetchStreamEarlyStopsItsThreads() throws {
        let names = (reader: "pf-rd-\(getpid() % 1000)", hasher: "pf-hs-\(getpid() % 1000)")
        final class Streams: @unchecked Sendable {
            // Touched by the test's thread, then only by the dropping thread.
            var all: [PrefetchStream] = []
        }
        let box = Streams()
        for _ in 0..<20 {
            let stream = try PrefetchStream(
                upstream: MemoryStream(Self.sample), bufferSize: 1024, depth: 2, verifying: Digest.of(Self.sample),
                threadNames: names)
            let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 10, alignment: 1)
            _ = try stream.read(into: scratch)
            scratch.deallocate()
            box.all.append(stream)
        }
        // A thread names itself once it runs: wait for all forty.
        var started = (0, 0)
        for _ in 0..<500 where started != (20, 20) {
            started = (Self.threads(named: names.reader), Self.threads(named: names.hasher))
            if started != (20, 20) { usleep(10_000) }
        }
        #expect(started == (20, 20), "each stream runs its reader and its hasher: \(started)")
        // Dropped on a thread of its own: a deinit that cannot stop its threads blocks forever,
        // and this test must then fail, not hang.
        try startThread(name: "pf-dropper") { box.all.removeAll() }
        var left = (Self.threads(named: names.reader), Self.threads(named: names.hasher))
        for _ in 0..<300 where left != (0, 0) {
            usleep(10_000)
            left = (Self.threads(named: names.reader), Self.threads(named: names.hasher))
        }
        #expect(left == (0, 0), "threads still running after their streams were dropped: \(left)")
    }

    @Test(arguments: [1, 4])
    func zstdRoundTripWithFrames(frames: Int) throws {
        let compressed = ZstdCompressor.compress(Self.sample, frames: frames, skippablePayload: Array("toc".utf8))
        let out = try ZstdDecompressor(upstream: MemoryStream(compressed)).readAll()
        #expect(out == Self.sample)
    }

    @Test func truncatedZstdIsCorrupt() throws {
        let compressed = ZstdCompressor.compress(Self.sample)
        let error = #expect(throws: UnpackError.self) {
            _ = try ZstdDecompressor(upstream: MemoryStream(Array(compressed.dropLast(100)))).readAll()
        }
        #expect(error?.code == .corruptLayer)
        #expect(error?.message.contains("truncated") == true)
    }

    @Test func zstdGarbageIsCorrupt() throws {
        let error = #expect(throws: UnpackError.self) {
            _ = try ZstdDecompressor(upstream: MemoryStream(Array("definitely not zstd".utf8))).readAll()
        }
        #expect(error?.code == .corruptLayer)
    }
}
