import Foundation
import Glibc
import LayerApply
import LayerStream
import LayoutSource
import OCIImage
import OCIUnpack
import Resolution
import RuntimeBundle
import Testing
import UnpackSystem
import UnpackTestSupport

import enum OCIImage.LayerCompression

/// What an image means must not depend on the reader: strict JSON for every document, nothing
/// read from outside the layout, tar streams read as Go's archive/tar reads them.
@Suite struct DocumentTrustTests {
    static let platform = #"{"architecture":"amd64","os":"linux"}"#

    /// A layout whose config and manifest are raw JSON text, so that they can hold what an
    /// encoder never writes (repeated keys).
    static func rawImage(_ f: UnpackFixture, config: (String) -> String, manifest: ((String, String) -> String)? = nil)
        throws -> (config: Descriptor, manifest: Descriptor)
    {
        var t = TarBuilder()
        t.file("hello", "x")
        let layer = try f.builder.layer(t.bytes(), compression: .gzip)
        let configDescriptor = try f.builder.blob(
            Array(config(layer.diffID.description).utf8), mediaType: .ociConfig)
        let configJSON =
            #"{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(configDescriptor.digest)","size":\#(configDescriptor.size)}"#
        let layerJSON =
            #"{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"\#(layer.descriptor.digest)","size":\#(layer.descriptor.size)}"#
        let text =
            manifest?(configJSON, layerJSON)
            ?? #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":\#(configJSON),"layers":[\#(layerJSON)]}"#
        let manifestDescriptor = try f.builder.blob(
            Array(text.utf8), mediaType: .ociManifest, platform: Platform(os: "linux", architecture: "amd64"))
        f.builder.indexEntries = []
        f.builder.tag(manifestDescriptor, "latest")
        try f.builder.write()
        return (configDescriptor, manifestDescriptor)
    }

    /// `"User":"root"` then `"User":"app"`: Go tools read app, Foundation root. Refused, naming the
    /// key and the config's digest.
    @Test func repeatedKeyInTheConfigIsRefused() throws {
        let f = try UnpackFixture()
        let (config, _) = try Self.rawImage(f) { diffID in
            #"{"architecture":"amd64","os":"linux","config":{"User":"root","User":"app"},"rootfs":{"type":"layers","diff_ids":["\#(diffID)"]}}"#
        }
        let error = try f.expectFailure(.invalidImage, "repeated key \"User\"")
        #expect(error?.message.contains(config.digest.description) == true, "\(String(describing: error))")
    }

    /// Two `layers` keys in a manifest: Go tools unpack the second list.
    @Test func repeatedKeyInTheManifestIsRefused() throws {
        let f = try UnpackFixture()
        let (_, manifest) = try Self.rawImage(
            f,
            config: { diffID in
                #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["\#(diffID)"]}}"#
            },
            manifest: { config, layer in
                #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":\#(config),"layers":[\#(layer)],"layers":[]}"#
            })
        let error = try f.expectFailure(.invalidImage, "repeated key \"layers\"")
        #expect(error?.message.contains(manifest.digest.description) == true, "\(String(describing: error))")
    }

    /// A size of 2^63 does not fit a descriptor's size: refused naming the field, not as "not
    /// valid JSON" (it is valid JSON).
    @Test func oversizedSizeNamesTheField() throws {
        let f = try UnpackFixture()
        _ = try Self.rawImage(
            f,
            config: { diffID in
                #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["\#(diffID)"]}}"#
            },
            manifest: { config, layer in
                let huge = layer.replacingOccurrences(
                    of: #""size":"#, with: #""size":9223372036854775808,"ignored":"#)
                return
                    #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":\#(config),"layers":[\#(huge)]}"#
            })
        let error = try f.expectFailure(.invalidImage)
        #expect(error?.message.contains("not valid JSON") == false, "\(String(describing: error))")
        #expect(error?.message.contains("layers[0].size") == true, "\(error?.message ?? "")")
    }

    // MARK: - Reads outside the layout

    static func secret() throws -> (TemporaryDirectory, String, [UInt8]) {
        let dir = try TemporaryDirectory()
        let bytes = Array("root:$6$very-secret-hash:19000:0:99999:7:::\n".utf8)
        try Data(bytes).write(to: URL(fileURLWithPath: dir.path + "/shadow"))
        return (dir, dir.path + "/shadow", bytes)
    }

    /// A blob that is a symlink to a host file is refused, and nothing about the file (its length,
    /// its hash) appears in the error.
    @Test func symlinkedBlobIsNotRead() throws {
        let f = try UnpackFixture()
        let layer = try f.oneFileImage()
        let (_, secretPath, secret) = try Self.secret()
        try f.builder.removeBlob(layer.descriptor.digest)
        let blob = f.builder.path + "/blobs/sha256/" + layer.descriptor.digest.encoded
        try FileManager.default.createSymbolicLink(atPath: blob, withDestinationPath: secretPath)
        let error = try f.expectFailure(.invalidImage, "through a symlink")
        let text = String(describing: error)
        #expect(!text.contains(Digest.of(secret).encoded), "the secret's hash leaked: \(text)")
        // As a number of its own, outside the paths and digests the message names (a random
        // temporary path or a hex digest may hold the same digits).
        let words = text.split(whereSeparator: { $0 == " " || $0 == "(" || $0 == ")" || $0 == "," })
        let numbers = words.filter { !$0.contains("/") && !$0.contains(":") }.map(String.init)
        #expect(!numbers.contains(String(secret.count)), "the secret's length leaked: \(text)")
    }

    /// `blobs/sha256` itself a symlink to a directory outside the layout: nothing is read there.
    @Test func symlinkedBlobDirectoryIsNotFollowed() throws {
        let f = try UnpackFixture()
        try f.oneFileImage()
        let elsewhere = try TemporaryDirectory()
        let blobs = f.builder.path + "/blobs/sha256"
        try FileManager.default.moveItem(atPath: blobs, toPath: elsewhere.path + "/sha256")
        try FileManager.default.createSymbolicLink(atPath: blobs, withDestinationPath: elsewhere.path + "/sha256")
        let error = try f.expectFailure(.invalidImage, "through a symlink")
        #expect(error?.message.contains("blobs/sha256") == true, "\(String(describing: error))")
    }

    /// A FIFO where a blob should be is "not a regular file", not "missing", and is never opened
    /// for reading (which would block).
    @Test(.timeLimit(.minutes(1)))
    func fifoBlobIsNotARegularFile() throws {
        let f = try UnpackFixture()
        let layer = try f.oneFileImage()
        try f.builder.removeBlob(layer.descriptor.digest)
        #expect(mkfifo(f.builder.path + "/blobs/sha256/" + layer.descriptor.digest.encoded, 0o644) == 0)
        let error = try f.expectFailure(.invalidImage, "is not a regular file")
        #expect(error?.context.digest == layer.descriptor.digest)
    }

    // MARK: - Tar streams as Go reads them

    /// The first entry of a one-file tar: its header and one data block.
    static func oneEntry(_ name: String) -> [UInt8] {
        var t = TarBuilder()
        t.file(name, "x")
        return Array(t.bytes()[0..<1024])
    }

    /// Entries after a single zero block are hidden from libarchive and refused by Go: refused.
    @Test(arguments: [LayerCompression.none, .gzip])
    func entriesAfterASingleZeroBlockAreRefused(compression: LayerCompression) throws {
        let f = try UnpackFixture()
        var second = TarBuilder()
        second.file("hidden", "y")
        let tar = Self.oneEntry("visible") + [UInt8](repeating: 0, count: 512) + second.bytes()
        try f.image([try f.builder.layer(tar, compression: compression)])
        let error = try f.expectFailure(.corruptLayer, "single zero block")
        #expect(error?.context.layerIndex == 0)
    }

    /// A single zero block that ends the stream is an end marker for both readers.
    @Test func aSingleZeroBlockAtTheEndIsAccepted() throws {
        let f = try UnpackFixture()
        let tar = Self.oneEntry("visible") + [UInt8](repeating: 0, count: 512)
        try f.image([try f.builder.layer(tar, compression: .none)])
        try f.unpack()
        #expect(try f.snapshot().paths == [".", "visible"])
    }

    /// A zero-byte layer is an empty tar (its diff_id is the digest of no bytes), uncompressed or
    /// compressed.
    @Test(arguments: [LayerCompression.none, .gzip, .zstd])
    func zeroByteLayerIsEmpty(compression: LayerCompression) throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("a", "a")
        try f.image([
            try f.builder.layer(t.bytes(), compression: .gzip), try f.builder.layer([], compression: compression),
        ])
        let result = try f.unpack()
        #expect(result.entries == [1, 0])
        #expect(try f.snapshot().paths == [".", "a"])
    }
}
