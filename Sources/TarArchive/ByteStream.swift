import OCIImage
import UnpackSystem

/// A stream that can lend its own buffers instead of copying into the caller's.
package protocol LendingByteStream: ByteStream {
    /// The next bytes of the stream in place (empty at the end), valid until the next call to
    /// `borrow` or `read`.
    func borrow() throws(UnpackError) -> UnsafeRawBufferPointer
}

/// A stream that can move forward without reading (a file): libarchive skips entry data with it.
package protocol SkippingByteStream: ByteStream {
    /// Moves up to `count` bytes forward; returns how many (fewer only at the end).
    func skip(_ count: Int64) throws(UnpackError) -> Int64
}

/// A stream over bytes already in memory (tests, small inputs).
package final class MemoryStream: ByteStream {
    private let bytes: [UInt8]
    private var offset = 0

    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    package func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
        let n = min(buffer.count, bytes.count - offset)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { src in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset..<(offset + n)]))
        }
        offset += n
        return n
    }
}

extension ByteStream {
    /// Reads the stream to its end into memory, failing past `limit` bytes (tests, small inputs).
    package func readAll(limit: Int = Int.max) throws(UnpackError) -> [UInt8] {
        var out: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { chunk.deallocate() }
        while true {
            let n = try read(into: chunk)
            if n == 0 { return out }
            guard out.count + n <= limit else {
                throw UnpackError(.limitExceeded, "stream is longer than \(limit) bytes")
            }
            out.append(contentsOf: chunk[0..<n])
        }
    }
}

extension ByteStream {
    /// Reads whatever is left and throws it away (tar padding after the end-of-archive blocks), so
    /// that every stage verifies the whole stream.
    package func drain() throws(UnpackError) {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { scratch.deallocate() }
        while try read(into: scratch) > 0 {}
    }
}

/// A file read from its current position (a blob of a layout).
package final class FileStream: ByteStream {
    private let fd: OwnedFD

    package init(_ fd: OwnedFD) { self.fd = fd }

    package func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
        do {
            return try fd.read(into: buffer)
        } catch {
            throw error.unpackError("reading \(error.path ?? "a blob") failed")
        }
    }
}
