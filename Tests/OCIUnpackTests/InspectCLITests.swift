import Foundation
import LayerApply
import LayerStream
import LayoutSource
import OCIImage
import OCIUnpack
import OCIUnpackCLI
import Resolution
import RuntimeBundle
import Testing
import UnpackSystem
import UnpackTestSupport

/// Runs the real `oci-unpack` binary and checks its output and exit codes.
@Suite struct InspectCLITests {
    let tmp: TemporaryDirectory
    let b: LayoutBuilder
    let gzip: Descriptor
    let zstd: Descriptor
    let arm: Descriptor

    init() throws {
        tmp = try TemporaryDirectory()
        b = try LayoutBuilder(path: tmp.path + "/img")
        var t = TarBuilder()
        t.file("etc/hostname", "x")
        let tar = t.bytes()
        gzip = try b.image(layers: [b.layer(tar, compression: .gzip), b.layer(tar, compression: .none)])
        zstd = try b.image(
            layers: [b.layer(tar, compression: .zstd), b.layer(tar, compression: .none)],
            annotations: [AnnotationKey.zstdCompression: "true"])
        arm = try b.image(
            layers: [b.layer(tar, compression: .gzip)], platform: Platform(os: "linux", architecture: "arm64"))
        b.tag(try b.index([gzip, zstd, arm]), "v1")
        try b.write()
    }

    func inspect(_ args: String...) throws -> CommandResult {
        try Command.run(Command.ociUnpack, ["inspect"] + args)
    }

    @Test func jsonReportsChosenVariantAndLayers() throws {
        let r = try inspect("oci:\(b.path):v1", "--platform", "linux/amd64", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let manifest = try #require(object["manifest"] as? [String: Any])
        #expect(manifest["digest"] as? String == zstd.digest.description)
        let layers = try #require(object["layers"] as? [[String: Any]])
        #expect(layers.map { $0["compression"] as? String } == ["zstd", "none"])
        #expect(object["platform"] as? String == "linux/amd64")
    }

    @Test func preferCompressionFlagPicksGzip() throws {
        let r = try inspect(b.path + ":v1", "--platform", "linux/amd64", "--prefer-compression", "gzip,zstd", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        // The chosen manifest, not any mention (the candidate list names every variant).
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let manifest = try #require(object["manifest"] as? [String: Any])
        #expect(manifest["digest"] as? String == gzip.digest.description)
        // And without the flag, the zstd variant.
        let plain = try inspect(b.path + ":v1", "--platform", "linux/amd64", "--json")
        let chosen = try #require(try JSONSerialization.jsonObject(with: Data(plain.stdout.utf8)) as? [String: Any])
        #expect((chosen["manifest"] as? [String: Any])?["digest"] as? String == zstd.digest.description)
    }

    @Test func textOutputExplainsCandidates() throws {
        let r = try inspect(b.path + ":v1", "--platform", "linux/arm64")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("chosen       \(arm.digest)  linux/arm64, gzip"))
        #expect(r.stdout.contains("platform linux/amd64 does not match linux/arm64"))
        #expect(r.stdout.contains("layers:     1"))
    }

    @Test(arguments: [
        (
            ["--platform", "linux/s390x"], UnpackError.Code.platformNotFound.exitCode,
            "available platforms: linux/amd64, linux/arm64"
        ),
        (["--platform", "linux//"], UnpackError.Code.invalidArgument.exitCode, "invalid platform"),
        (
            ["--prefer-compression", "zstd,brotli"], UnpackError.Code.invalidArgument.exitCode,
            "unknown compression \"brotli\""
        ),
    ])
    func errorsHaveDocumentedExitCodes(extra: [String], status: Int32, message: String) throws {
        let r = try Command.run(Command.ociUnpack, ["inspect", b.path + ":v1"] + extra)
        #expect(r.status == status)
        #expect(r.stderr.contains(message), "\(r.stderr)")
        #expect(r.stderr.hasPrefix("oci-unpack: error: "))
    }

    /// A bare architecture is Linux's, and --os/--arch/--variant replace one field of the base.
    @Test(arguments: [
        (["--platform", "amd64"], "linux/amd64"),
        (["--platform", "linux/amd64", "--arch", "arm64"], "linux/arm64"),
        (["--platform", "linux/arm/v7", "--arch", "amd64"], "linux/amd64"),
        (["--platform", "linux/arm64", "--arch", "arm", "--variant", "v6"], "linux/arm/v6"),
        (["--platform", "linux/arm64", "--os", "windows"], "windows/arm64"),
    ])
    func platformFieldsCanBeReplaced(extra: [String], requested: String) throws {
        let r = try Command.run(Command.ociUnpack, ["inspect", "--json", b.path + ":v1"] + extra)
        if r.status == 0 {
            let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            #expect(object?["requestedPlatform"] as? String == requested, "\(r.stdout)")
        } else {
            // The fixture holds linux/amd64 and linux/arm64 only.
            #expect(r.stderr.contains("no manifest for platform \(requested) "), "\(r.stderr)")
        }
    }

    /// A mistyped command gets the closest name, not "unexpected arguments".
    @Test func aMistypedCommandGetsASuggestion() throws {
        let r = try Command.run(Command.ociUnpack, ["unpak", b.path + ":v1", tmp.path + "/bundle"])
        ExitCodeTests.expectOneErrorLine(r, .invalidArgument, "unknown command 'unpak'; did you mean 'unpack'?")
        let far = try Command.run(Command.ociUnpack, ["frobnicate"])
        ExitCodeTests.expectOneErrorLine(far, .invalidArgument, "unknown command 'frobnicate' (the commands: unpack,")
    }

    @Test func unknownTagAndMissingLayout() throws {
        let tag = try inspect(b.path + ":v2")
        #expect(tag.status == UnpackError.Code.notFound.exitCode)
        #expect(tag.stderr.contains("available tags: v1"))
        let missing = try inspect(tmp.path + "/absent")
        #expect(missing.status == UnpackError.Code.notFound.exitCode)
        #expect(missing.stderr.contains(tmp.path + "/absent"))
    }

    @Test func jsonErrorObject() throws {
        try b.overwriteBlob(zstd.digest, with: Array(repeating: 0x20, count: Int(zstd.size)))
        let r = try inspect(b.path + ":v1", "--platform", "linux/amd64", "--json")
        #expect(r.status == UnpackError.Code.digestMismatch.exitCode)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let error = try #require(object["error"] as? [String: String])
        #expect(error["code"] == "digestMismatch")
        #expect(error["digest"] == zstd.digest.description)
    }
}
