import Foundation
import Glibc
import OCIUnpack
import Testing
import UnpackTestSupport

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
        warnings: WarningLog? = nil, limits: UnpackLimits = .init()
    ) throws(UnpackError) -> UnpackResult {
        let log = warnings
        var options = UnpackOptions(
            force: force,
            apply: ApplyOptions(
                forceUserspaceResolver: userspaceResolver, finishFilesInParallel: finishInParallel,
                warn: { log?.append($0) }),
            honourInterrupts: false, limits: limits)
        options.prefetch = prefetch
        return try Unpacker().unpack(
            "oci:\(builder.path):latest", into: bundle,
            request: ResolutionRequest(platform: Platform(os: "linux", architecture: "amd64")), options: options)
    }

    func snapshot() throws -> TreeSnapshot { try TreeSnapshot(rootfs) }

    /// Unpacks expecting failure with `code` (and a message containing `message`), and checks that
    /// nothing was left beside the bundle. Returns the error for further checks.
    @discardableResult
    func expectFailure(
        _ code: UnpackError.Code, _ message: String? = nil, userspaceResolver: Bool = false,
        limits: UnpackLimits = .init(), sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> UnpackError? {
        let error = #expect(throws: UnpackError.self, sourceLocation: sourceLocation) {
            try self.unpack(userspaceResolver: userspaceResolver, limits: limits)
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

    func read(_ path: String) throws -> String {
        try String(contentsOfFile: rootfs + "/" + path, encoding: .utf8)
    }
}

final class WarningLog: @unchecked Sendable {
    // Guarded by `lock`; the unpacker may warn from any thread.
    private var items: [String] = []
    private let lock = NSLock()
    func append(_ s: String) { lock.withLock { items.append(s) } }
    var all: [String] { lock.withLock { items } }
}

let isRoot = geteuid() == 0
