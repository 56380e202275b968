import Foundation
import OCIUnpack
import Testing
import UnpackTestSupport

/// The worked example of the library's documentation (OCIUnpack.docc/UnpackingAnImage.md), run as
/// written against a layout built here. This file imports only `OCIUnpack` (and the fixture
/// builder): the façade alone must be enough for a library user.
@Suite struct LibraryExampleTests {
    @Test func theDocumentedExampleRuns() throws {
        let tmp = try TemporaryDirectory()
        let builder = try LayoutBuilder(path: tmp.path + "/app")
        var t = TarBuilder()
        t.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
        t.file("etc/group", "root:x:0:\napp:x:1000:\n")
        t.file("bin/tool", "#!/bin/sh\n", mode: 0o755)
        let arm = Platform(os: "linux", architecture: "arm64")
        builder.tag(
            try builder.image(
                layers: [builder.layer(t.bytes(), compression: .zstd)], platform: arm,
                execution: .init(entrypoint: ["/bin/tool"])),
            "1.4")
        try builder.write()

        // As in the documentation, with its paths replaced by this test's.
        let unpacker = Unpacker()
        let request = ResolutionRequest(
            platform: try Platform(parsing: "linux/arm64"),
            compressionPreference: [.zstd, .gzip, .none])
        let image = try unpacker.resolve("oci:\(builder.path):1.4", request: request)
        #expect(image.candidates.count == 1 && image.candidates[0].reason == nil)
        #expect(image.layers.count == 1)

        let cancellation = Cancellation()
        let finished = Counter()
        let warnings = Counter()
        var options = UnpackOptions(
            warn: { _ in warnings.add() },
            progress: { progress in
                if progress.layerFinished { finished.add() }
            },
            cancellation: cancellation)
        options.overrides = ConfigOverrides(env: ["MODE=batch"], user: "app")
        var limits = UnpackLimits()
        try limits.set("uncompressed-bytes=8G")
        options.limits = limits

        let result = try unpacker.unpack(
            "oci:\(builder.path):1.4", into: tmp.path + "/bundle", request: request, options: options)
        #expect(result.entries == [3])
        #expect(finished.value == 1)
        #expect(FileManager.default.fileExists(atPath: result.rootfs + "/bin/tool"))
        let config = try String(contentsOfFile: result.bundle + "/config.json", encoding: .utf8)
        #expect(config.contains("\"MODE=batch\"") && config.contains("\"uid\" : 1000"), "\(config)")

        // A cancelled token stops the next unpack, which leaves nothing behind.
        cancellation.cancel()
        let error = #expect(throws: UnpackError.self) {
            try unpacker.unpack(
                "oci:\(builder.path):1.4", into: tmp.path + "/again", request: request, options: options)
        }
        #expect(error?.code == .interrupted && error?.message == "cancelled")
        #expect(!FileManager.default.fileExists(atPath: tmp.path + "/again"))
        let left = try FileManager.default.contentsOfDirectory(atPath: tmp.path).sorted()
        #expect(left == ["app", "bundle"], "\(left)")
    }
}

/// A thread-safe count for the callbacks.
final class Counter: @unchecked Sendable {
    // Guarded by `lock`.
    private var count = 0
    private let lock = NSLock()
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
