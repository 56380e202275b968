import Foundation
import Glibc
import LayerStream
import LayoutSource
import OCIImage
import OCIUnpack
import Testing
import UnpackSystem
import UnpackTestSupport

/// A library user's own `ImageSource` supplies bytes only: what they must be is checked above it,
/// so a source that lies (or a buggy one that forgets to check) yields an error, never an
/// unverified config or layer.
@Suite struct LyingSourceTests {
    /// A layout that answers one digest with other bytes, the way a careless source would: no
    /// check of its own.
    final class Lying: ImageSource, @unchecked Sendable {
        let layout: OCILayout
        let lie: Digest
        let with: [UInt8]

        init(_ layout: OCILayout, lie: Digest, with bytes: [UInt8]) {
            self.layout = layout
            self.lie = lie
            self.with = bytes
        }

        var name: String { "a lying source" }
        var index: Index { layout.index }
        var limits: DocumentLimits { layout.limits }
        func hasBlob(_ digest: Digest) -> Bool { layout.hasBlob(digest) }
        func readBlob(_ descriptor: Descriptor, limit: Int) throws(UnpackError) -> [UInt8] {
            descriptor.digest == lie ? with : try layout.readBlob(descriptor, limit: limit)
        }
        func openBlob(_ descriptor: Descriptor) throws(UnpackError) -> any ByteStream {
            descriptor.digest == lie ? MemoryBytes(with) : try layout.openBlob(descriptor)
        }
        func sniffDescriptor(for digest: Digest) throws(UnpackError) -> Descriptor {
            try layout.sniffDescriptor(for: digest)
        }
    }

    final class MemoryBytes: ByteStream {
        var bytes: ArraySlice<UInt8>
        init(_ bytes: [UInt8]) { self.bytes = bytes[...] }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
            let n = min(buffer.count, bytes.count)
            for i in 0..<n { buffer[i] = bytes[bytes.startIndex + i] }
            bytes = bytes.dropFirst(n)
            return n
        }
    }

    static func reference(_ f: UnpackFixture) throws -> ImageReference {
        try ImageReference(parsing: "oci:\(f.tmp.path)/layout:latest")
    }

    @Test func anImageFromACorrectSourceOfTheCallersUnpacks() throws {
        let f = try UnpackFixture()
        let layer = try f.oneFileImage()
        let source = Lying(try OCILayout(path: f.tmp.path + "/layout"), lie: Digest.of([0]), with: [])
        let unpacker = Unpacker()
        let image = try unpacker.resolve(try Self.reference(f), in: source, request: .init())
        let result = try unpacker.unpack(image, into: f.bundle)
        #expect(result.image.layers.map(\.descriptor.digest) == [layer.descriptor.digest])
        #expect(FileManager.default.fileExists(atPath: f.rootfs + "/hello"))
    }

    @Test func aConfigWithOtherBytesIsRefusedNamingItsDigest() throws {
        let f = try UnpackFixture()
        try f.oneFileImage()
        let layout = try OCILayout(path: f.tmp.path + "/layout")
        let honest = try Unpacker().resolve(try Self.reference(f), in: layout, request: .init())
        let config = honest.manifest.config
        // The same JSON with another user: exactly what a tampered config would try.
        let forged = Array(
            String(decoding: try layout.readBlob(config, limit: 1 << 20), as: UTF8.self)
                .replacingOccurrences(of: #""created""#, with: #""config":{"User":"0"},"created""#).utf8)
        let source = Lying(layout, lie: config.digest, with: forged)
        #expect {
            try Unpacker().resolve(try Self.reference(f), in: source, request: .init())
        } throws: { error in
            let e = error as? UnpackError
            return (e?.code == .digestMismatch || e?.code == .sizeMismatch) && e?.context.digest == config.digest
        }
    }

    @Test func aLayerWithOtherBytesIsRefusedAndNothingIsLeft() throws {
        let f = try UnpackFixture()
        let layer = try f.oneFileImage()
        var other = TarBuilder()
        other.file("planted", "y")
        let blob = GzipCompressor.compress(other.bytes())
        let layout = try OCILayout(path: f.tmp.path + "/layout")
        let source = Lying(layout, lie: layer.descriptor.digest, with: blob)
        let unpacker = Unpacker()
        let image = try unpacker.resolve(try Self.reference(f), in: source, request: .init())
        #expect {
            try unpacker.unpack(image, into: f.bundle)
        } throws: { error in
            let e = error as? UnpackError
            return (e?.code == .digestMismatch || e?.code == .sizeMismatch) && e?.context.layerIndex == 0
        }
        #expect(!FileManager.default.fileExists(atPath: f.bundle), "no bundle is left behind")
    }
}
