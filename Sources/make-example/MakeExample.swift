import Foundation
import OCIImage
import UnpackTestSupport

/// Writes the example OCI layout used by the README's quick start and the end-to-end tests:
/// `index.json` → tag `latest` → an image index with
///   - linux/amd64, gzip variant   (layers gzip, gzip, uncompressed)
///   - linux/amd64, zstd variant   (layers zstd, zstd, uncompressed; annotated compression.zstd)
///   - linux/arm64                 (layers gzip, zstd, uncompressed)
/// The amd64 image carries a static busybox (Debian's busybox-static) so that runc can start it.
@main
struct MakeExample {
    static func main() throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard let output = arguments.first, arguments.count == 1 else {
            FileHandle.standardError.write(Data("usage: make-example OUTPUT-DIR\n".utf8))
            exit(64)
        }
        let busyboxPath = "/bin/busybox"
        guard let busybox = FileManager.default.contents(atPath: busyboxPath) else {
            FileHandle.standardError.write(
                Data("make-example: \(busyboxPath) is missing; run hack/setup (Debian's busybox-static)\n".utf8))
            exit(1)
        }
        if FileManager.default.fileExists(atPath: output) {
            try FileManager.default.removeItem(atPath: output)
        }
        let b = try LayoutBuilder(path: output)

        let amd64Layers = Self.layers(busybox: Array(busybox))
        let arm64Layers = Self.layers(busybox: nil)
        let execution = ImageConfig.Execution(
            user: "app", env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello"],
            entrypoint: ["/bin/sh", "-c"],
            cmd: ["echo \"$GREETING from the oci-unpack example\"; id; pwd; cat /app/message.txt"],
            workingDir: "/app", labels: ["org.opencontainers.image.title": "oci-unpack example"])

        let amd64 = Platform(os: "linux", architecture: "amd64")
        let gzipVariant = try b.image(
            layers: [
                b.layer(amd64Layers[0], compression: .gzip), b.layer(amd64Layers[1], compression: .gzip),
                b.layer(amd64Layers[2], compression: .none),
            ], platform: amd64, execution: execution)
        let zstdVariant = try b.image(
            layers: [
                b.layer(amd64Layers[0], compression: .zstd), b.layer(amd64Layers[1], compression: .zstd),
                b.layer(amd64Layers[2], compression: .none),
            ], platform: amd64, execution: execution, annotations: [AnnotationKey.zstdCompression: "true"])
        let arm64Image = try b.image(
            layers: [
                b.layer(arm64Layers[0], compression: .gzip), b.layer(arm64Layers[1], compression: .zstd),
                b.layer(arm64Layers[2], compression: .none),
            ], platform: Platform(os: "linux", architecture: "arm64"), execution: execution)
        let index = try b.index([gzipVariant, zstdVariant, arm64Image])
        b.tag(index, "latest")
        try b.write()
        print("make-example: wrote \(output) (tag latest: linux/amd64 gzip+zstd variants, linux/arm64)")
    }

    /// Three layers: a base system, an application layer that deletes and links, and a config layer.
    static func layers(busybox: [UInt8]?) -> [[UInt8]] {
        var base = TarBuilder()
        for dir in ["bin/", "etc/", "root/", "home/", "home/app/", "app/", "var/", "var/cache/"] {
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
