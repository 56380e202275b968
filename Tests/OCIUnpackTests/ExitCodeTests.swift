import Foundation
import Glibc
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

import struct OCIImage.MediaType

/// Every documented exit code, produced through the real binary, with its one error line.
@Suite struct ExitCodeTests {
    /// The table never gives a sysexits.h number (64-78) a meaning other than its own.
    @Test func noCodeReusesASysexitsNumberWithAnotherMeaning() {
        let sysexits: [Int32: String] = [64: "invalidArgument", 66: "notFound", 74: "io", 77: "permissionDenied"]
        for code in UnpackError.Code.all where (64...78).contains(code.exitCode) {
            #expect(sysexits[code.exitCode] == code.name, "\(code.name) uses sysexits number \(code.exitCode)")
        }
        #expect(Set(UnpackError.Code.all.map(\.exitCode)).count == UnpackError.Code.all.count, "codes are distinct")
    }

    static func expectOneErrorLine(
        _ r: CommandResult, _ code: UnpackError.Code, _ message: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(r.status == code.exitCode, "\(code.name): \(r.status) \(r.stderr)", sourceLocation: sourceLocation)
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("oci-unpack: error: ") }
        #expect(errors.count == 1, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(errors.first?.contains(message) == true, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stderr.contains("Error: "), "ArgumentParser's own line: \(r.stderr)", sourceLocation: sourceLocation)
    }

    /// Every bad argument of every command: one line, the invalid-argument code.
    @Test(arguments: [
        (["unpack", "--platform", "linux//", "IMG", "B"], "invalid platform"),
        (["unpack", "--prefer-compression", "brotli", "IMG", "B"], "unknown compression \"brotli\""),
        (["unpack", "--gzip-decoder", "pigz", "IMG", "B"], "--gzip-decoder must be isal or zlib"),
        (["unpack", "--env", "NOEQUALS", "IMG", "B"], "--env \"NOEQUALS\" is not NAME=VALUE"),
        (["unpack", "--log-level", "loud", "IMG", "B"], "unknown log level"),
        (["unpack", "--limit", "nonsense", "IMG", "B"], "--limit \"nonsense\""),
        (["unpack", "--no-such-option", "IMG", "B"], "no-such-option"),
        (["unpack", "IMG"], "Missing expected argument"),
        (["unpack", "--uid-map", "0:100000", "IMG", "B"], "id map \"0:100000\" is not CONTAINER:HOST:SIZE"),
        (["unpack", "--uid-map", "0:100000:0", "IMG", "B"], "is not CONTAINER:HOST:SIZE"),
        (
            ["unpack", "--uid-map", "0:100000:100", "--uid-map", "50:1:1", "IMG", "B"],
            "--uid-map ranges 0:100000:100 and 50:1:1 overlap inside the container"
        ),
        (
            ["unpack", "--gid-map", "0:4294967295:2", "IMG", "B"],
            "--gid-map 0:4294967295:2 runs past the last 32-bit id"
        ),
        // (uid_t)-1 is "unchanged" to chown: mapped, it would leave host root's files as they are.
        (
            ["unpack", "--uid-map", "0:4294967295:1", "IMG", "B"],
            "--uid-map 0:4294967295:1 maps id 4294967295, which is (uid_t)-1"
        ),
        (
            ["unpack", "--uid-map", "4294967295:1000:1", "IMG", "B"],
            "--uid-map 4294967295:1000:1 maps id 4294967295"
        ),
        (
            ["unpack", "--uid-map", "0:100000:65536", "--gid-map", "0:4294901760:65536", "IMG", "B"],
            "--gid-map 0:4294901760:65536 maps id 4294967295"
        ),
        (["unpack", "--rootless", "--uid-map", "0:1:1", "IMG", "B"], "--rootless cannot be combined with --uid-map"),
        (
            ["unpack", "--map-unmapped", "drop", "--uid-map", "0:1:1", "IMG", "B"],
            "--map-unmapped must be refuse or overflow"
        ),
        (["unpack", "--map-unmapped", "overflow", "IMG", "B"], "--map-unmapped needs --uid-map or --gid-map"),
        (["inspect", "--platform", "linux//", "IMG"], "invalid platform"),
        (["inspect", "--prefer-compression", "zstd,brotli", "IMG"], "unknown compression \"brotli\""),
        (["inspect", "--prefer-compression", "first,zstd", "IMG"], "--prefer-compression first stands alone"),
        (["inspect", "--log-level", "loud", "IMG"], "unknown log level"),
        (["inspect"], "Missing expected argument"),
        (["no-such-command"], "no-such-command"),
    ])
    func badArgumentsAreInvalidArgument(arguments: [String], message: String) throws {
        let r = try Command.run(Command.ociUnpack, arguments)
        Self.expectOneErrorLine(r, .invalidArgument, message)
    }

    @Test func helpAndVersionSucceed() throws {
        let help = try Command.run(Command.ociUnpack, ["unpack", "--help"])
        #expect(help.status == 0 && help.stdout.contains("USAGE"), "\(help.stdout)")
        let version = try Command.run(Command.ociUnpack, ["--version"])
        #expect(version.status == 0 && version.stdout.contains("0.1.0"))
    }

    static func unpack(_ f: UnpackFixture, _ extra: [String] = []) throws -> CommandResult {
        try Command.run(Command.ociUnpack, ["unpack", "-q"] + extra + [f.builder.path, f.bundle])
    }

    static func oneFile(_ f: UnpackFixture, entries: Int = 1) throws -> LayoutBuilder.Layer {
        var t = TarBuilder()
        for i in 0..<entries { t.file("f\(i)", "x") }
        let layer = try f.builder.layer(t.bytes(), compression: .gzip)
        try f.image([layer])
        return layer
    }

    @Test func eachFailureHasItsCode() throws {
        // notFound: no layout there.
        let missing = try Command.run(Command.ociUnpack, ["unpack", "/nonexistent/layout", "/tmp/never"])
        Self.expectOneErrorLine(missing, .notFound, "/nonexistent/layout")

        // platformNotFound.
        let f1 = try UnpackFixture()
        _ = try Self.oneFile(f1)
        Self.expectOneErrorLine(
            try Self.unpack(f1, ["--platform", "linux/s390x"]), .platformNotFound, "available platforms: linux/amd64")

        // unsupportedMediaType: the only candidate has a layer nobody can process.
        let f2 = try UnpackFixture()
        var t = TarBuilder()
        t.file("a", "a")
        try f2.image([
            try f2.builder.layer(t.bytes(), compression: .gzip, mediaType: "application/vnd.oci.image.layer.v1.tar+lz4")
        ])
        Self.expectOneErrorLine(try Self.unpack(f2), .unsupportedMediaType, "tar+lz4")

        // digestMismatch: a wrong diff_id.
        let f3 = try UnpackFixture()
        var wrongDiff = try f3.builder.layer(t.bytes(), compression: .gzip)
        wrongDiff.diffID = Digest.of([7])
        try f3.image([wrongDiff])
        Self.expectOneErrorLine(try Self.unpack(f3), .digestMismatch, "diff_id")

        // sizeMismatch: the descriptor says one byte more.
        let f4 = try UnpackFixture()
        var bigger = try f4.builder.layer(t.bytes(), compression: .gzip)
        bigger.descriptor.size += 1
        try f4.image([bigger])
        Self.expectOneErrorLine(try Self.unpack(f4), .sizeMismatch, "shorter than its descriptor's size")

        // invalidImage: a repeated key in the config.
        let f5 = try UnpackFixture()
        let layer5 = try f5.builder.layer(t.bytes(), compression: .gzip)
        let config = try f5.builder.blob(
            Array(
                #"{"architecture":"amd64","os":"linux","os":"windows","rootfs":{"type":"layers","diff_ids":["\#(layer5.diffID)"]}}"#
                    .utf8), mediaType: .ociConfig)
        let manifest = try f5.builder.json(
            Manifest(mediaType: .ociManifest, config: config, layers: [layer5.descriptor]), mediaType: .ociManifest,
            platform: Platform(os: "linux", architecture: "amd64"))
        f5.builder.tag(manifest, "latest")
        try f5.builder.write()
        Self.expectOneErrorLine(try Self.unpack(f5), .invalidImage, "repeated key \"os\"")

        // corruptLayer: a gzip stream cut short (its blob digest is of the cut bytes).
        let f6 = try UnpackFixture()
        let full = GzipCompressor.compress(t.bytes())
        try f6.image([
            try f6.builder.layer(tar: t.bytes(), blob: Array(full.prefix(full.count / 2)), mediaType: .ociLayerGzip)
        ])
        Self.expectOneErrorLine(try Self.unpack(f6), .corruptLayer, "layer 0")

        // unsafePath: a whiteout of "..".
        let f7 = try UnpackFixture()
        var hostile = TarBuilder()
        hostile.add(.init(path: "d/.wh..", kind: .file(content: [])))
        try f7.image(hostile)
        Self.expectOneErrorLine(try Self.unpack(f7), .unsafePath, "invalid whiteout")

        // bundleExists: a non-empty bundle without --force.
        let f8 = try UnpackFixture()
        _ = try Self.oneFile(f8)
        try FileManager.default.createDirectory(atPath: f8.rootfs, withIntermediateDirectories: true)
        Self.expectOneErrorLine(try Self.unpack(f8), .bundleExists, "exists and is not empty")

        // limitExceeded: more entries than allowed.
        let f9 = try UnpackFixture()
        _ = try Self.oneFile(f9, entries: 3)
        Self.expectOneErrorLine(
            try Self.unpack(f9, ["--limit", "entries-per-layer=2"]), .limitExceeded, "limit entries-per-layer")

        // io: a file-size limit (EFBIG on the write).
        let f10 = try UnpackFixture()
        var big = TarBuilder()
        big.file("big", String(repeating: "x", count: 1 << 20))
        try f10.image(big)
        let efbig = try f10.unpackUnderFileSizeLimit()
        Self.expectOneErrorLine(efbig, .io, "File too large")
    }

    /// permissionDenied: an ordinary user cannot create the staging directory in a root-owned one.
    @Test(.enabled(if: rootTestsRun, "switches to an unprivileged user with setpriv"))
    func permissionDeniedHasItsCode() throws {
        let f = try UnpackFixture()
        _ = try Self.oneFile(f)
        _ = chmod(f.tmp.path, 0o755)
        let r = try Command.run(
            "setpriv",
            [
                "--reuid=65534", "--regid=65534", "--clear-groups", Command.ociUnpack, "unpack", "-q", f.builder.path,
                f.bundle,
            ])
        Self.expectOneErrorLine(r, .permissionDenied, "Permission denied")
    }

    /// An id-mapped unpack by an ordinary user fails at once, before anything is created, even
    /// where the user could write the bundle.
    @Test(.enabled(if: rootTestsRun, "switches to an unprivileged user with setpriv"))
    func idMapsWithoutRootAreRefusedAtOnce() throws {
        let f = try UnpackFixture()
        _ = try Self.oneFile(f)
        _ = chmod(f.tmp.path, 0o777)
        let r = try Command.run(
            "setpriv",
            [
                "--reuid=65534", "--regid=65534", "--clear-groups", Command.ociUnpack, "unpack", "-q",
                "--uid-map", "0:100000:65536", f.builder.path, f.bundle,
            ])
        Self.expectOneErrorLine(r, .permissionDenied, "an id-mapped unpack (--uid-map, --gid-map) needs root")
        #expect(try f.siblings().isEmpty, "nothing is left")
    }
}
