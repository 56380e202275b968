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

import struct OCIImage.MediaType

/// config.json as `unpack` writes it: users looked up inside the new rootfs only.
@Suite struct BundleConfigTests {
    func image(_ f: UnpackFixture, user: String, _ build: (inout TarBuilder) -> Void) throws {
        var t = TarBuilder()
        build(&t)
        let layer = try f.builder.layer(t.bytes(), compression: .gzip)
        f.builder.indexEntries = []
        f.builder.tag(
            try f.builder.image(layers: [layer], execution: .init(user: user, cmd: ["/bin/true"])), "latest")
        try f.builder.write()
    }

    func config(_ f: UnpackFixture) throws -> JSONValue {
        try JSONDecoder().decode(
            JSONValue.self, from: Data(contentsOf: URL(fileURLWithPath: f.bundle + "/config.json")))
    }

    @Test func usersComeFromTheRootfs() throws {
        let f = try UnpackFixture()
        try image(f, user: "web") { t in
            t.file("etc/passwd", "web:x:33:44::/var/www:/bin/sh\n")
            t.file("etc/group", "www:x:44:\nextra:x:45:web\n")
        }
        try f.unpack()
        let process = try #require(try config(f)["process"])
        #expect(process["user"]?["uid"] == .int(33))
        #expect(process["user"]?["gid"] == .int(44))
        #expect(process["user"]?["additionalGids"] == .array([.int(45)]))
        #expect(process["env"]?.arrayValue?.contains(.string("HOME=/var/www")) == true)
        #expect(try config(f)["root"]?["path"] == .string("rootfs"))
    }

    @Test func passwdSymlinkedOutOfTheRootIsResolvedInside() throws {
        // CVE-2024-9676: /etc/passwd -> /etc/host-passwd must mean the rootfs's file, and
        // ../../../../etc/passwd must not climb to the host's.
        let f = try UnpackFixture()
        try image(f, user: "inside") { t in
            t.file("etc/host-passwd", "inside:x:7:8::/:/bin/sh\n")
            t.symlink("etc/passwd", to: "/etc/host-passwd")
        }
        try f.unpack()
        #expect(try config(f)["process"]?["user"]?["uid"] == .int(7))

        let g = try UnpackFixture()
        // "daemon" exists in the host's /etc/passwd, never in this image.
        try image(g, user: "daemon") { t in
            t.symlink("etc/passwd", to: "../../../../../../../../etc/passwd")
        }
        let error = #expect(throws: UnpackError.self) { try g.unpack() }
        #expect(error?.code == .unsafePath)
        #expect(error?.message.contains("/etc/passwd in the root filesystem is a symlink loop") == true)
        #expect(try g.siblings().isEmpty)
    }

    @Test func unknownUserLeavesNoBundle() throws {
        let f = try UnpackFixture()
        try image(f, user: "ghost") { t in t.file("etc/passwd", "root:x:0:0::/root:/bin/sh\n") }
        try f.expectFailure(.notFound, "user \"ghost\"")
    }

    @Test(.timeLimit(.minutes(1)))
    func fifoAsPasswdDoesNotHang() throws {
        let f = try UnpackFixture()
        try image(f, user: "x") { t in t.add(.init(path: "etc/passwd", kind: .fifo)) }
        let error = #expect(throws: UnpackError.self) { try f.unpack() }
        #expect(error?.code == .unsafePath)
        #expect(error?.message.contains("/etc/passwd in the root filesystem is not a regular file") == true)
    }

    /// Refused before any layer is read: the layer blob is corrupt (same size, other bytes), so an
    /// unpack that started would fail with digestMismatch instead.
    @Test func nonLinuxImageIsRefusedBeforeUnpacking() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("x", "x")
        let windows = Platform(os: "windows", architecture: "amd64")
        let layer = try f.builder.layer(t.bytes(), compression: .gzip)
        try f.builder.overwriteBlob(
            layer.descriptor.digest, with: [UInt8](repeating: 0x41, count: Int(layer.descriptor.size)))
        f.builder.tag(try f.builder.image(layers: [layer], platform: windows), "latest")
        try f.builder.write()
        let error = #expect(throws: UnpackError.self) {
            try Unpacker().unpack(
                "oci:\(f.builder.path):latest", into: f.bundle, request: ResolutionRequest(platform: windows),
                options: UnpackOptions())
        }
        #expect(error?.code == .unsupportedMediaType)
        #expect(error?.message.contains("only linux images can become runtime bundles") == true)
        #expect(try f.siblings().isEmpty)
    }

    @Test func templateOptionIsUsed() throws {
        let f = try UnpackFixture()
        try image(f, user: "") { t in t.file("a", "a") }
        let template = f.tmp.path + "/template.json"
        try Data(#"{"ociVersion":"1.0.2","process":{"terminal":true},"hostname":"custom"}"#.utf8)
            .write(to: URL(fileURLWithPath: template))
        let r = try Command.run(
            Command.ociUnpack,
            ["unpack", "-q", "--platform", "linux/amd64", "--template", template, f.builder.path, f.bundle])
        #expect(r.status == 0, "\(r.stderr)")
        let config = try config(f)
        #expect(config["hostname"] == .string("custom"))
        #expect(config["process"]?["terminal"] == .bool(true))
        #expect(config["process"]?["args"] == .strings(["/bin/true"]))
    }
}

/// Review findings turned into tests.
@Suite struct ReviewRegressionTests {
    /// A device with no driver (char 511:511): opening it would fail with ENXIO and a message
    /// about that; "not a regular file" shows it was examined with O_PATH and never opened.
    @Test(.enabled(if: rootTestsRun, "mknod needs root"))
    func deviceNodeAsPasswdIsNeverOpened() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.add(.init(path: "etc/passwd", kind: .characterDevice(major: 511, minor: 511), mode: 0o644))
        let layer = try f.builder.layer(t.bytes(), compression: .gzip)
        f.builder.tag(try f.builder.image(layers: [layer], execution: .init(user: "x", cmd: ["/bin/true"])), "latest")
        try f.builder.write()
        let error = #expect(throws: UnpackError.self) { try f.unpack() }
        #expect(error?.code == .unsafePath)
        #expect(error?.message.contains("/etc/passwd in the root filesystem is not a regular file") == true)
    }

    @Test func bundleFilledDuringUnpackIsNotReplacedWithoutForce() throws {
        let tmp = try TemporaryDirectory()
        let target = tmp.path + "/bundle"
        let staging = try BundleStaging(target: target, force: false)
        try FileManager.default.createDirectory(atPath: target + "/rootfs", withIntermediateDirectories: true)
        let error = #expect(throws: UnpackError.self) { try staging.publish() }
        #expect(error?.code == .bundleExists)
        #expect(FileManager.default.fileExists(atPath: target + "/rootfs"))
        staging.discard()
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp.path) == ["bundle"])
    }

    @Test(arguments: [GzipDecoder.isal, .zlib])
    func gzipImplementationIsTheOneAskedFor(implementation: GzipDecoder) throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("a", String(repeating: "a", count: 10_000))
        let tar = t.bytes()
        var gz = GzipCompressor.compress(tar)
        gz[gz.count - 6] ^= 0xff  // the CRC-32: the two implementations word this differently
        try f.image([try f.builder.layer(tar: tar, blob: gz, mediaType: .ociLayerGzip)])
        var options = UnpackOptions()
        options.gzipDecoder = implementation
        let error = #expect(throws: UnpackError.self) {
            try Unpacker().unpack(
                "oci:\(f.builder.path):latest", into: f.bundle,
                request: ResolutionRequest(platform: Platform(os: "linux", architecture: "amd64")), options: options)
        }
        #expect(error?.code == .corruptLayer)
        let expected = implementation == .isal ? "incorrect data check (CRC-32 or length)" : "incorrect data check"
        #expect(error?.message.hasSuffix(expected) == true, "\(String(describing: error?.message))")
    }
}
