import LayerStream
import OCIImage
import Testing

@Suite struct CodecTests {
    static let sample: [UInt8] = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / 7) }

    @Test(arguments: [1, 3])
    func gzipRoundTripWithMembers(members: Int) throws {
        let compressed = GzipCompressor.compress(Self.sample, members: members)
        let out = try GzipDecompressor(upstream: MemoryStream(compressed)).readAll()
        #expect(out == Self.sample)
    }

    @Test(arguments: [1, 4])
    func zstdRoundTripWithFrames(frames: Int) throws {
        let compressed = ZstdCompressor.compress(Self.sample, frames: frames, skippablePayload: Array("toc".utf8))
        let out = try ZstdDecompressor(upstream: MemoryStream(compressed)).readAll()
        #expect(out == Self.sample)
    }

    @Test func truncatedGzipIsCorrupt() throws {
        let compressed = GzipCompressor.compress(Self.sample)
        let error = #expect(throws: UnpackError.self) {
            _ = try GzipDecompressor(upstream: MemoryStream(Array(compressed.dropLast(100)))).readAll()
        }
        #expect(error?.code == .corruptLayer)
        #expect(error?.message.contains("truncated") == true)
    }

    @Test func truncatedZstdIsCorrupt() throws {
        let compressed = ZstdCompressor.compress(Self.sample)
        let error = #expect(throws: UnpackError.self) {
            _ = try ZstdDecompressor(upstream: MemoryStream(Array(compressed.dropLast(100)))).readAll()
        }
        #expect(error?.code == .corruptLayer)
        #expect(error?.message.contains("truncated") == true)
    }

    @Test func gzipTrailingGarbageIsCorrupt() throws {
        let compressed = GzipCompressor.compress(Self.sample) + Array("garbage".utf8)
        let error = #expect(throws: UnpackError.self) {
            _ = try GzipDecompressor(upstream: MemoryStream(compressed)).readAll()
        }
        #expect(error?.code == .corruptLayer)
        #expect(error?.message.contains("trailing data") == true)
    }

    @Test func zstdGarbageIsCorrupt() throws {
        let error = #expect(throws: UnpackError.self) {
            _ = try ZstdDecompressor(upstream: MemoryStream(Array("definitely not zstd".utf8))).readAll()
        }
        #expect(error?.code == .corruptLayer)
    }
}
