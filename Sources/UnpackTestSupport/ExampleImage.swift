import Foundation
import OCIImage

/// The example image of the quick start and the end-to-end tests.
///
/// Tags:
/// - `latest`: an index with linux/amd64 in a gzip variant (gzip, gzip, uncompressed layers) and a
///   zstd variant (zstd, zstd, uncompressed; annotated `io.github.containers.compression.zstd`),
///   and linux/arm64 (gzip, zstd, uncompressed);
/// - `amd64-gzip`, `amd64-zstd`, `amd64-mixed` (gzip, zstd, uncompressed): the amd64 image alone;
/// - `amd64-alternative-manifest`: an index whose gzip entry names the zstd manifest in the
///   annotation `zstd-compressed-alternative`, the zstd manifest also listed last under a platform
///   no client matches (so copying tools carry it);
/// - `amd64-alternative-layers`: a gzip manifest whose gzip layers each name their zstd blob in the
///   same annotation (both forms are read with `--alternatives`; docs/images.md).
///
/// The amd64 image carries a static busybox (Debian's busybox-static), so runc can start it; its
/// command prints a greeting, `id`, `pwd` and a file the second layer wrote.
package enum ExampleImage {
    package static let busyboxPath = "/bin/busybox"

    package static let execution = ImageConfig.Execution(
        user: "app", env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello"],
        entrypoint: ["/bin/sh", "-c"],
        cmd: ["echo \"$GREETING from the oci-unpack example\"; id; pwd; cat /app/message.txt"],
        workingDir: "/app", labels: ["org.opencontainers.image.title": "oci-unpack example"])

    /// Writes the layout at `path` (replacing it).
    package static func write(to path: String, busybox: [UInt8]) throws {
        if FileManager.default.fileExists(atPath: path) {
            try FileManager.default.removeItem(atPath: path)
        }
        let b = try LayoutBuilder(path: path)
        let amd64Layers = layers(busybox: busybox)
        let arm64Layers = layers(busybox: nil)
        let amd64 = Platform(os: "linux", architecture: "amd64")
        func image(
            _ tars: [[UInt8]], _ compressions: [LayerCompression], platform: Platform,
            annotations: [String: String]? = nil
        )
            throws -> Descriptor
        {
            try b.image(
                layers: zip(tars, compressions).map { try b.layer($0.0, compression: $0.1) }, platform: platform,
                execution: execution, annotations: annotations)
        }
        // The same layers, gzip ones naming their zstd blobs.
        let alternativeLayers = try amd64Layers.map { tar -> LayoutBuilder.Layer in
            var gzip = try b.layer(tar, compression: .gzip)
            let zstd = try b.layer(tar, compression: .zstd)
            gzip.descriptor = try LayoutBuilder.naming(zstd.descriptor, on: gzip.descriptor)
            return gzip
        }
        let gzip = try image(amd64Layers, [.gzip, .gzip, .none], platform: amd64)
        let zstd = try image(
            amd64Layers, [.zstd, .zstd, .none], platform: amd64, annotations: [AnnotationKey.zstdCompression: "true"])
        let mixed = try image(amd64Layers, [.gzip, .zstd, .none], platform: amd64)
        let arm64 = try image(
            arm64Layers, [.gzip, .zstd, .none], platform: Platform(os: "linux", architecture: "arm64"))
        b.tag(try b.index([gzip, zstd, arm64]), "latest")
        b.tag(gzip, "amd64-gzip")
        b.tag(zstd, "amd64-zstd")
        b.tag(mixed, "amd64-mixed")
        let unmatched = Platform(os: "unknown", architecture: "unknown")
        var unlisted = zstd
        unlisted.platform = unmatched
        b.tag(try b.index([try LayoutBuilder.naming(zstd, on: gzip), unlisted]), "amd64-alternative-manifest")
        b.tag(
            try b.image(layers: alternativeLayers, platform: amd64, execution: execution), "amd64-alternative-layers")
        try b.write()
    }

    /// Reads busybox from the machine (Debian's busybox-static).
    package static func hostBusybox() throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: busyboxPath) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: busyboxPath])
        }
        return Array(data)
    }

    /// Three layers: a base system, an application layer that deletes and links, a config layer.
    static func layers(busybox: [UInt8]?) -> [[UInt8]] {
        var base = TarBuilder()
        for dir in ["bin/", "etc/", "root/", "home/", "home/app/", "var/", "var/cache/"] {
            base.directory(dir)
        }
        base.add(.init(path: "tmp/", kind: .directory, mode: 0o1777))
        if let busybox {
            base.add(.init(path: "bin/busybox", kind: .file(content: busybox), mode: 0o755))
            for applet in ["sh", "echo", "id", "pwd", "cat", "ls", "env", "sleep", "true", "false", "whoami"] {
                base.symlink("bin/\(applet)", to: "busybox")
            }
        }
        base.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
        base.file("etc/group", "root:x:0:\napp:x:1000:\nstaff:x:50:app\n")
        base.file("etc/motd", "this file is deleted by the next layer\n")
        base.directory("var/cache/old/")
        base.file("var/cache/old/stale", "stale\n")
        base.directory("app/", uid: 1000, gid: 1000)

        var app = TarBuilder()
        app.whiteout("etc/motd")
        app.opaque("var/cache/")
        app.file("var/cache/fresh", "fresh\n")
        app.file("app/message.txt", "unpacked by oci-unpack\n", uid: 1000, gid: 1000)
        app.hardlink("app/message-link.txt", to: "app/message.txt")

        var config = TarBuilder()
        config.file("etc/app.conf", "greeting=hello\n", mode: 0o600)
        return [base.bytes(), app.bytes(), config.bytes()]
    }
}
