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

/// A layout with one image built from tar layers, and a bundle path to unpack it into.
final class UnpackFixture {
    let tmp: TemporaryDirectory
    let builder: LayoutBuilder
    var bundle: String { tmp.path + "/bundle" }
    var rootfs: String { bundle + "/rootfs" }

    init() throws {
        tmp = try TemporaryDirectory()
        builder = try LayoutBuilder(path: tmp.path + "/layout")
    }

    /// Tags an image of `layers` (tar, compression) as `latest`.
    func image(_ layers: [(TarBuilder, LayerCompression)]) throws {
        let built = try layers.map { try builder.layer($0.0.bytes(), compression: $0.1) }
        try image(built)
    }

    func image(_ layers: [LayoutBuilder.Layer]) throws {
        builder.indexEntries = []
        builder.tag(try builder.image(layers: layers), "latest")
        try builder.write()
    }

    /// Tags an image of one gzip layer holding `hello`, and returns that layer (for tests that
    /// then remove or replace its blob).
    @discardableResult
    func oneFileImage() throws -> LayoutBuilder.Layer {
        var t = TarBuilder()
        t.file("hello", "x")
        let layer = try builder.layer(t.bytes(), compression: .gzip)
        try image([layer])
        return layer
    }

    /// Tags an image of `tars`, every layer gzip.
    func image(_ tars: TarBuilder...) throws {
        try image(tars.map { ($0, .gzip) })
    }

    @discardableResult
    func unpack(
        force: Bool = false, userspaceResolver: Bool = false, finishInParallel: Bool = true, prefetch: Bool = true,
        warnings: WarningLog? = nil, limits: UnpackLimits = .init(), ownership: Ownership = .automatic
    ) throws(UnpackError) -> UnpackResult {
        let log = warnings
        var options = UnpackOptions(
            force: force,
            apply: ApplyOptions(
                ownership: ownership, forceUserspaceResolver: userspaceResolver,
                finishFilesInParallel: finishInParallel,
                warn: { log?.append($0) }), limits: limits)
        options.prefetch = prefetch
        return try Unpacker().unpack(
            "oci:\(builder.path):latest", into: bundle,
            request: ResolutionRequest(platform: Platform(os: "linux", architecture: "amd64")), options: options)
    }

    func snapshot() throws -> TreeSnapshot { try TreeSnapshot(rootfs) }

    /// Runs `oci-unpack unpack -q` on this image under a 64 KiB file-size limit (`ulimit -f`
    /// counts 512-byte blocks in dash).
    func unpackUnderFileSizeLimit() throws -> CommandResult {
        try Command.run(
            "sh", ["-c", "ulimit -f 128; exec \"$0\" \"$@\"", Command.ociUnpack, "unpack", "-q", builder.path, bundle])
    }

    /// Unpacks expecting failure with `code` (and a message containing `message`), and checks that
    /// nothing was left beside the bundle. Returns the error for further checks.
    @discardableResult
    func expectFailure(
        _ code: UnpackError.Code, _ message: String? = nil, userspaceResolver: Bool = false,
        limits: UnpackLimits = .init(), ownership: Ownership = .automatic,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> UnpackError? {
        let error = #expect(throws: UnpackError.self, sourceLocation: sourceLocation) {
            try self.unpack(userspaceResolver: userspaceResolver, limits: limits, ownership: ownership)
        }
        #expect(error?.code == code, "\(String(describing: error))", sourceLocation: sourceLocation)
        if let message {
            #expect(
                error?.message.contains(message) == true, "\(String(describing: error?.message))",
                sourceLocation: sourceLocation)
        }
        let left = try siblings()
        #expect(left.isEmpty, "left beside the bundle: \(left)", sourceLocation: sourceLocation)
        return error
    }

    /// Names in the directory holding the bundle (to prove no staging directory was left).
    func siblings() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0 != "layout" }.sorted()
    }

    /// Extended attribute `name` of `path` in the rootfs (not following a symlink), or nil.
    func xattr(_ path: String, _ name: String) throws -> [UInt8]? {
        try CSys.lgetxattr(rootfs + "/" + path, name)
    }

    func read(_ path: String) throws -> String {
        try String(contentsOfFile: rootfs + "/" + path, encoding: .utf8)
    }
}

/// Each capability named in `OCI_UNPACK_REQUIRE` is present (nothing runs when none is named).
@Suite struct RequirementTests {
    @Test func requiredCapabilitiesArePresent() throws {
        for name in Required.names.sorted() {
            switch name {
            case "root":
                #expect(isRoot, "root is required: run as root")
            case "acl":
                #expect(FreshMetadataTests.aclsWork, "POSIX ACLs (and python3 to set them) are required")
            case "openat2":
                // The in-root resolver in use must be the kernel's: a fallback to the userspace
                // walk (ENOSYS, or EPERM from a seccomp filter) would test that walk twice.
                let tmp = try TemporaryDirectory()
                let root = try RootDirectory(path: tmp.path)
                #expect(root.useOpenat2, "openat2 is required, but the userspace resolver is in use")
            case "userns":
                #expect(UserNamespaceTests.unshareWorks, "unprivileged user namespaces (unshare -r) are required")
            default:
                Issue.record("OCI_UNPACK_REQUIRE names an unknown capability \"\(name)\"")
            }
        }
    }

    @Test func forcingTheUserspaceResolverIsHonoured() throws {
        let tmp = try TemporaryDirectory()
        #expect(try RootDirectory(path: tmp.path, forceUserspaceResolver: true).useOpenat2 == false)
    }
}
