import OCIImage
import Synchronization
import UnpackSystem

/// The first stage of a layer: the blob's bytes from its source, checked against its descriptor.
/// Its length must be exactly `size` and its content must hash to `digest`; both are checked as the
/// bytes stream past, and the end of the stream is reported only once they hold.
package final class BlobStream: ByteStream {
    private let upstream: any ByteStream
    private let descriptor: Descriptor
    private var digester: Digester
    private var count: Int64 = 0
    private var told = false
    /// Published copy of `count` for progress reporting from another thread.
    private let published = Atomic<Int64>(0)

    /// Bytes read so far; safe to read from any thread (progress reporting).
    package var bytesRead: Int64 { published.load(ordering: .relaxed) }

    package init(upstream: any ByteStream, descriptor: Descriptor) {
        self.upstream = upstream
        self.descriptor = descriptor
        digester = Digester(descriptor.digest.algorithm)
    }

    /// Tells the source's stream, once, whether its bytes verified (``ByteStream/blobVerified(_:)``).
    private func verdict(_ verified: Bool) {
        guard !told else { return }
        told = true
        upstream.blobVerified(verified)
    }

    package func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
        // Never read past the declared size: a blob that grew is caught without reading it all.
        let remaining = descriptor.size - count
        let want = Int(min(Int64(buffer.count), max(remaining, 1)))
        let n: Int
        do {
            n = try upstream.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
        } catch {
            throw error.adding(digest: descriptor.digest, mediaType: descriptor.mediaType)
        }
        count += Int64(n)
        published.store(count, ordering: .relaxed)
        if count > descriptor.size {
            verdict(false)
            throw UnpackError(
                .sizeMismatch,
                "blob \(descriptor.digest) went past its descriptor's size \(descriptor.size) while being read",
                context: .init(digest: descriptor.digest, mediaType: descriptor.mediaType))
        }
        if n == 0 {
            guard count == descriptor.size else {
                verdict(false)
                throw UnpackError(
                    .sizeMismatch,
                    "blob \(descriptor.digest) ended before its descriptor's size \(descriptor.size) while being read",
                    context: .init(digest: descriptor.digest, mediaType: descriptor.mediaType))
            }
            let actual = digester.finalize()
            guard actual == descriptor.digest else {
                verdict(false)
                throw UnpackError(
                    .digestMismatch, "blob \(descriptor.digest) is corrupt: its content does not hash to its digest",
                    context: .init(digest: descriptor.digest, mediaType: descriptor.mediaType))
            }
            verdict(true)
            return 0
        }
        digester.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        return n
    }
}

/// The uncompressed tar stream of a layer, hashed on the way and compared with the config's
/// `rootfs.diff_ids[i]` when it ends.
package final class DiffIDStream: ByteStream {
    private let upstream: any ByteStream
    private let expected: Digest
    private var digester: Digester
    private var verified = false
    /// Uncompressed bytes so far.
    package private(set) var bytesRead: Int64 = 0
    /// The most uncompressed bytes allowed (decompression bombs), and what to say past it.
    private let limit: Int64
    private let limitExceeded: @Sendable (Int64) -> UnpackError

    /// Hashes only when `verify` (the caller may know the bytes were verified already).
    private let verify: Bool

    package init(
        upstream: any ByteStream, diffID: Digest, verify: Bool = true, limit: Int64 = .max,
        limitExceeded: @escaping @Sendable (Int64) -> UnpackError = { limit in
            UnpackError(.limitExceeded, "the uncompressed layer is larger than the \(limit)-byte limit")
        }
    ) {
        self.upstream = upstream
        self.expected = diffID
        self.verify = verify
        self.limit = limit
        self.limitExceeded = limitExceeded
        digester = Digester(diffID.algorithm)
    }

    /// The error for an uncompressed layer that does not hash to its diff_id.
    static func mismatch(actual: Digest, expected: Digest) -> UnpackError {
        UnpackError(
            .digestMismatch, "the uncompressed layer hashes to \(actual), but the config's diff_id is \(expected)")
    }

    package func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
        if verified { return 0 }
        let n = try upstream.read(into: buffer)
        if n == 0 {
            let actual = verify ? digester.finalize() : expected
            guard actual == expected else { throw Self.mismatch(actual: actual, expected: expected) }
            verified = true
            return 0
        }
        bytesRead += Int64(n)
        guard bytesRead <= limit else { throw limitExceeded(limit) }
        if verify { digester.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
        return n
    }
}

/// A stream whose first bytes can be looked at before they are consumed.
final class PeekStream: ByteStream {
    private let upstream: any ByteStream
    private var head: [UInt8] = []
    private var headOffset = 0

    init(upstream: any ByteStream) {
        self.upstream = upstream
    }

    /// Up to `count` first bytes (fewer only when the stream is shorter).
    func peek(_ count: Int) throws(UnpackError) -> [UInt8] {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
        defer { scratch.deallocate() }
        while head.count < count {
            let n = try upstream.read(into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<(count - head.count)]))
            if n == 0 { break }
            head += scratch[0..<n]
        }
        return Array(head.prefix(count))
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
        if headOffset < head.count {
            let n = min(buffer.count, head.count - headOffset)
            head.withUnsafeBytes { src in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[headOffset..<(headOffset + n)]))
            }
            headOffset += n
            return n
        }
        return try upstream.read(into: buffer)
    }
}

/// What the first bytes of a stream say about its compression.
package enum Magic: Equatable, Sendable, CustomStringConvertible {
    case gzip
    case zstd
    case other

    package init(_ head: [UInt8]) {
        if head.count >= 2, head[0] == 0x1f, head[1] == 0x8b {
            self = .gzip
        } else if head.count >= 4, head[1] == 0xb5, head[2] == 0x2f, head[3] == 0xfd, head[0] == 0x28 {
            self = .zstd
        } else if head.count >= 4, head[0] & 0xf0 == 0x50, head[1] == 0x2a, head[2] == 0x4d, head[3] == 0x18 {
            // A zstd skippable frame (0x184D2A50–5F, little-endian), as zstd:chunked begins.
            self = .zstd
        } else {
            self = .other
        }
    }

    package var description: String {
        switch self {
        case .gzip: "gzip magic 1f 8b"
        case .zstd: "zstd magic 28 b5 2f fd"
        case .other: "no compression magic"
        }
    }
}

/// Builds the decompression stage for a layer.
///
/// The media type chooses the decompressor and the stream's magic bytes must confirm it. When they
/// disagree the layer is refused, naming both: decoding by magic would unpack something the image
/// does not describe, and decoding by media type would produce garbage.
package enum LayerDecoder {
    /// Which gzip implementation to use.
    package enum GzipImplementation: String, Sendable, CaseIterable {
        /// ISA-L's inflate (the default: several times faster).
        case isal
        /// zlib, the reference implementation.
        case zlib
    }

    package static func decompressing(
        _ upstream: any ByteStream, compression: LayerCompression, mediaType: MediaType,
        gzip: GzipImplementation = .isal
    ) throws(UnpackError) -> any ByteStream {
        let peek = PeekStream(upstream: upstream)
        let magic = Magic(try peek.peek(4))
        let mismatch = { (found: Magic) in
            UnpackError(
                .corruptLayer,
                "media type \(mediaType) says \(compression == .none ? "uncompressed" : compression.rawValue), but the blob starts with \(found)",
                context: .init(mediaType: mediaType))
        }
        switch (compression, magic) {
        case (.gzip, .gzip):
            switch gzip {
            case .isal: return IsalGzipDecompressor(upstream: peek)
            case .zlib: return try GzipDecompressor(upstream: peek)
            }
        case (.zstd, .zstd):
            return try ZstdDecompressor(upstream: peek)
        case (.none, .other):
            return peek
        case (_, let found):
            throw mismatch(found)
        }
    }
}
