internal import CZstd
import OCIImage

/// Streaming zstd decompression (libzstd) over an upstream `ByteStream`; several frames and
/// skippable frames (zstd:chunked tables of contents) are accepted.
package final class ZstdDecompressor: ByteStream {
    private let upstream: any ByteStream
    private let context: OpaquePointer
    private var input: UnsafeMutableRawBufferPointer
    private var inBuffer = ZSTD_inBuffer()
    private var inputEnd = false
    private var finished = false
    /// Whether the decoder is inside a frame (its last call returned non-zero).
    private var insideFrame = false

    /// `maxWindowLog` caps the memory a frame may ask for (27 = 128 MiB, zstd's own default limit).
    package init(upstream: any ByteStream, inputBufferSize: Int = 256 * 1024, maxWindowLog: Int32 = 27)
        throws(UnpackError)
    {
        guard let context = ZSTD_createDStream() else {
            throw UnpackError(.internal, "ZSTD_createDStream failed")
        }
        self.upstream = upstream
        self.context = context
        input = .allocate(byteCount: inputBufferSize, alignment: 16)
        ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, maxWindowLog)
    }

    deinit {
        ZSTD_freeDStream(context)
        input.deallocate()
    }

    package func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
        guard !finished, let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        var out = ZSTD_outBuffer(dst: base, size: buffer.count, pos: 0)
        while out.pos < out.size {
            if inBuffer.pos == inBuffer.size && !inputEnd {
                try refill()
            }
            let noMoreInput = inBuffer.pos == inBuffer.size && inputEnd
            if noMoreInput && !insideFrame {
                finished = true
                break
            }
            let before = out.pos
            let rc = ZSTD_decompressStream(context, &out, &inBuffer)
            if ZSTD_isError(rc) != 0 { throw corrupt(rc) }
            // 0: a frame was fully decoded and flushed; anything else: the frame goes on.
            insideFrame = rc != 0
            if noMoreInput && insideFrame && out.pos == before {
                throw UnpackError(.corruptLayer, "zstd stream is truncated (ends inside a frame)")
            }
        }
        return out.pos
    }

    private func corrupt(_ rc: Int) -> UnpackError {
        UnpackError(.corruptLayer, "zstd stream is corrupt: \(String(cString: ZSTD_getErrorName(rc)))")
    }

    private func refill() throws(UnpackError) {
        let n = try upstream.read(into: input)
        if n == 0 { inputEnd = true }
        inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: n, pos: 0)
    }
}

/// zstd compression in memory (fixtures, the example image).
package enum ZstdCompressor {
    /// Compresses `bytes` as `frames` frames, optionally preceded by a skippable frame carrying
    /// `skippablePayload` (as zstd:chunked writes its table of contents).
    package static func compress(
        _ bytes: [UInt8], level: Int32 = 3, frames: Int = 1, skippablePayload: [UInt8]? = nil
    ) -> [UInt8] {
        var out: [UInt8] = []
        if let payload = skippablePayload {
            out += [0x50, 0x2a, 0x4d, 0x18]
            let n = UInt32(payload.count)
            out += [UInt8(n & 0xff), UInt8((n >> 8) & 0xff), UInt8((n >> 16) & 0xff), UInt8(n >> 24)]
            out += payload
        }
        let count = max(1, frames)
        let chunk = max(1, (bytes.count + count - 1) / count)
        var start = 0
        repeat {
            let end = min(bytes.count, start + chunk)
            out += compressFrame(Array(bytes[start..<end]), level: level)
            start = end
        } while start < bytes.count
        return out
    }

    private static func compressFrame(_ bytes: [UInt8], level: Int32) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: ZSTD_compressBound(bytes.count))
        let n = out.withUnsafeMutableBytes { dst in
            bytes.withUnsafeBytes { src in
                ZSTD_compress(dst.baseAddress, dst.count, src.baseAddress, src.count, level)
            }
        }
        precondition(ZSTD_isError(n) == 0, "ZSTD_compress failed")
        return Array(out[0..<n])
    }
}
