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

    /// Two bundles of the example image from one layer store start under runc, and what one
    /// container writes is not seen by the other.
    @Test func runcStartsStoreBundles() throws {
        let c = try Container()
        let store = c.tmp.path + "/store"
        let (first, one) = try c.unpack(
            "amd64-gzip", ["--store", store], command: ["cat /app/message.txt; echo written > /app/mine"], into: "one")
        try #require(first.status == 0, "\(first.stderr)")
        let (second, two) = try c.unpack(
            "amd64-zstd", ["--store", store], command: ["cat /app/mine 2>/dev/null || echo absent"], into: "two")
        try #require(second.status == 0, "\(second.stderr)")
        defer {
            _ = try? Command.run(Command.ociUnpack, ["remove", one])
            _ = try? Command.run(Command.ociUnpack, ["remove", two])
        }
        #expect(try Self.validate(one + "/config.json").status == 0)
        let runOne = try c.run(one, id: "oci-unpack-\(getpid())-store-one")
        #expect(runOne.status == 0 && runOne.stdout == "unpacked by oci-unpack\n", "\(runOne.stdout)\(runOne.stderr)")
        let runTwo = try c.run(two, id: "oci-unpack-\(getpid())-store-two")
        #expect(runTwo.status == 0 && runTwo.stdout == "absent\n", "\(runTwo.stdout)\(runTwo.stderr)")
        #expect(try String(contentsOfFile: one + "/upper/app/mine", encoding: .utf8) == "written\n")
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
