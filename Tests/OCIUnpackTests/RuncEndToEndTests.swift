import Foundation
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

/// The example image (static busybox) in gzip, zstd and mixed form, unpacked by oci-unpack, its
/// config.json validated against the runtime-spec schema, and started with Debian's runc.
@Suite(.enabled(if: rootTestsRun, "runc needs root"), .serialized)
struct RuncEndToEndTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static func validate(_ config: String) throws -> CommandResult {
        try Command.run(repository + "/hack/validate-runtime-config", [config])
    }

    struct Container {
        let tmp: TemporaryDirectory
        let layout: String

        init() throws {
            tmp = try TemporaryDirectory()
            layout = tmp.path + "/layout"
            try ExampleImage.write(to: layout, busybox: try ExampleImage.hostBusybox())
        }

        func unpack(_ tag: String, _ options: [String] = [], command: [String] = [], into name: String) throws
            -> (CommandResult, String)
        {
            let bundle = tmp.path + "/" + name
            let result = try Command.run(
                Command.ociUnpack,
                ["unpack", "-q", "--platform", "linux/amd64"] + options + ["oci:\(layout):\(tag)", bundle]
                    + (command.isEmpty ? [] : ["--"] + command))
            return (result, bundle)
        }

        func run(_ bundle: String, id: String) throws -> CommandResult {
            try Command.run("runc", ["--root", tmp.path + "/runc-state", "run", "--bundle", bundle, id])
        }
    }

    @Test(arguments: ["latest", "amd64-gzip", "amd64-zstd", "amd64-mixed"])
    func runcStartsTheImageAsItsAuthorIntended(tag: String) throws {
        let c = try Container()
        let (unpack, bundle) = try c.unpack(tag, into: "bundle")
        try #require(unpack.status == 0, "\(unpack.stderr)")
        let validation = try Self.validate(bundle + "/config.json")
        #expect(
            validation.status == 0,
            "config.json does not match the runtime-spec schema: \(validation.stdout)\(validation.stderr)")
        let run = try c.run(bundle, id: "oci-unpack-\(getpid())-\(tag)")
        #expect(run.status == 0, "runc: \(run.stderr)")
        #expect(
            run.stdout == """
                hello from the oci-unpack example
                uid=1000(app) gid=1000(app) groups=50(staff)
                /app
                unpacked by oci-unpack

                """)
    }

    @Test func commandLineOverridesReachTheContainer() throws {
        let c = try Container()
        let (unpack, bundle) = try c.unpack(
            "amd64-zstd", ["--user", "root", "--workdir", "/tmp", "--env", "GREETING=hi"],
            command: ["echo $GREETING; id; pwd"], into: "custom")
        try #require(unpack.status == 0, "\(unpack.stderr)")
        #expect(try Self.validate(bundle + "/config.json").status == 0)
        let run = try c.run(bundle, id: "oci-unpack-\(getpid())-custom")
        #expect(run.status == 0, "runc: \(run.stderr)")
        #expect(run.stdout == "hi\nuid=0(root) gid=0(root)\n/tmp\n")
    }
}
