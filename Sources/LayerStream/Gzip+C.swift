internal import CZlib
import OCIImage

/// Streaming gzip decompression (zlib) over an upstream `ByteStream`; accepts several concatenated
/// members, as gzip(1) writes them, and refuses anything after the last member that is not one.
package final class GzipDecompressor: ByteStream {
    private let upstream: any ByteStream
    private var stream = z_stream()
    private var input: UnsafeMutableRawBufferPointer
    private var inputEnd = false
    private var finished = false
    private var memberStarted = false

    package init(upstream: any ByteStream, inputBufferSize: Int = 256 * 1024) throws(UnpackError) {
        self.upstream = upstream
        input = .allocate(byteCount: inputBufferSize, alignment: 16)
        // 15 + 16: a gzip wrapper, not zlib or raw deflate.
        let rc = inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            // deinit frees `input` (and calls inflateEnd, harmless on a stream that failed to init).
            throw UnpackError(.internal, "zlib inflateInit2 failed (\(rc))")
        }
    }

    deinit {
        inflateEnd(&stream)
        input.deallocate()
    }

    package func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
        guard !finished, let out = buffer.baseAddress, buffer.count > 0 else { return 0 }
        stream.next_out = out.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = UInt32(min(buffer.count, Int(UInt32.max)))
        while stream.avail_out > 0 {
            if stream.avail_in == 0 && !inputEnd {
                try refill()
            }
            if stream.avail_in == 0 && inputEnd {
                if memberStarted {
                    throw UnpackError(.corruptLayer, "gzip stream is truncated (ends inside a member)")
                }
                finished = true
                break
            }
            memberStarted = true
            let rc = inflate(&stream, Z_NO_FLUSH)
            switch rc {
            case Z_OK:
                continue
            case Z_STREAM_END:
                memberStarted = false
                // Another member may follow; it must start with the gzip magic.
                if stream.avail_in == 0 && !inputEnd { try refill() }
                if stream.avail_in == 0 && inputEnd {
                    finished = true
                    return buffer.count - Int(stream.avail_out)
                }
                guard stream.next_in[0] == 0x1f, stream.avail_in < 2 || stream.next_in[1] == 0x8b else {
                    throw UnpackError(.corruptLayer, "gzip stream has trailing data that is not a gzip member")
                }
                inflateReset(&stream)
            case Z_BUF_ERROR where stream.avail_in == 0:
                continue
            default:
                let detail = stream.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                throw UnpackError(.corruptLayer, "gzip stream is corrupt: \(detail)")
            }
        }
        return buffer.count - Int(stream.avail_out)
    }

    private func refill() throws(UnpackError) {
        let n = try upstream.read(into: input)
        if n == 0 {
            inputEnd = true
        }
        stream.next_in = input.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.avail_in = UInt32(n)
    }
}

/// gzip compression in memory (fixtures, the example image). `members` > 1 splits the input into
/// that many concatenated gzip members.
package enum GzipCompressor {
    package static func compress(_ bytes: [UInt8], level: Int32 = 6, members: Int = 1) -> [UInt8] {
        let count = max(1, members)
        let chunk = max(1, (bytes.count + count - 1) / count)
        var out: [UInt8] = []
        var start = 0
        repeat {
            let end = min(bytes.count, start + chunk)
            out += compressMember(Array(bytes[start..<end]), level: level)
            start = end
        } while start < bytes.count
        return out
    }

    private static func compressMember(_ bytes: [UInt8], level: Int32) -> [UInt8] {
        var stream = z_stream()
        let rc = deflateInit2_(
            &stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
            Int32(MemoryLayout<z_stream>.size))
        precondition(rc == Z_OK, "deflateInit2 failed: \(rc)")
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))) + 64)
        var input = bytes
        let produced = input.withUnsafeMutableBufferPointer { inBuf in
            out.withUnsafeMutableBufferPointer { outBuf in
                stream.next_in = inBuf.baseAddress
                stream.avail_in = UInt32(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = UInt32(outBuf.count)
                let rc = deflate(&stream, Z_FINISH)
                precondition(rc == Z_STREAM_END, "deflate did not finish: \(rc)")
                return outBuf.count - Int(stream.avail_out)
            }
        }
        return Array(out[0..<produced])
    }
}
