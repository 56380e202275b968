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

/// `oci-unpack unpack` as a process: exit codes, messages, signals.
@Suite struct UnpackCLITests {
    @Test func unpacksTheExampleShapedImageAndReports() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("hello", "world")
        try f.image([(t, .zstd)])
        let r = try Command.run(
            Command.ociUnpack, ["unpack", "--platform", "linux/amd64", "oci:\(f.builder.path):latest", f.bundle])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("into \(f.bundle): 1 layer, 1 entry, config.json"), "\(r.stdout)")
        #expect(try f.read("hello") == "world")
    }

    /// `unpack --json`: inspect's keys for the image, and what the unpack did per layer; an error
    /// is the `{"error": …}` object.
    @Test func unpackJSONSaysWhatWasUnpacked() throws {
        let f = try UnpackFixture()
        var one = TarBuilder()
        one.file("hello", "world")
        var two = TarBuilder()
        two.file("a", "1")
        two.file("b", "2")
        try f.image([(one, .zstd), (two, .gzip)])
        let r = try Command.run(
            Command.ociUnpack,
            ["unpack", "--json", "--platform", "linux/amd64", "oci:\(f.builder.path):latest", f.bundle])
        try #require(r.status == 0, "\(r.stderr)")
        let object = try JSONValue(parsing: Array(r.stdout.utf8))
        #expect(object["bundle"] == .string(f.bundle))
        #expect(object["configFile"] == .string(f.bundle + "/config.json"))
        #expect(object["rootfs"] == .string(f.bundle + "/rootfs"))
        #expect(object["platform"] == .string("linux/amd64"))
        #expect(object["manifest"]?["digest"]?.stringValue?.hasPrefix("sha256:") == true)
        #expect(object["candidates"]?.arrayValue?.first?["status"] == .string("chosen"))
        #expect(object["layers"]?.arrayValue?.map { $0["compression"] } == [.string("zstd"), .string("gzip")])
        let applied = try #require(object["applied"]?.arrayValue)
        #expect(applied.map { $0["entries"] } == [.int(1), .int(2)])
        #expect(applied.map { $0["digest"] } == object["layers"]?.arrayValue?.map { $0["digest"] })
        #expect(
            applied.allSatisfy {
                if case .double = $0["seconds"] { return true }
                return $0["seconds"] == .int(0)
            }, "\(r.stdout)")
        // The fixture's config has no command: the warning is in the object, as on stderr.
        let warnings = object["warnings"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(warnings.count == 1 && warnings[0].contains("neither Entrypoint nor Cmd"), "\(warnings)")
        #expect(object["store"] == nil)

        let failed = try Command.run(
            Command.ociUnpack, ["unpack", "--json", "oci:\(f.builder.path):nope", f.tmp.path + "/other"])
        #expect(failed.status == UnpackError.Code.notFound.exitCode)
        let error = try JSONValue(parsing: Array(failed.stdout.utf8))
        #expect(error["error"]?["code"] == .string("notFound"), "\(failed.stdout)")
    }

    /// Relative bundle paths, down to one character, resolve against the working directory
    /// (Foundation's path splitting trapped on `o`).
    @Test(arguments: ["o", "./o", "b/", "sub/o", "sub//o//"])
    func relativeBundlePaths(bundle: String) throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("hello", "world")
        try f.image(t)
        try FileManager.default.createDirectory(atPath: f.tmp.path + "/sub", withIntermediateDirectories: true)
        let r = try Command.run(
            Command.ociUnpack, ["unpack", "-q", f.builder.path, bundle], currentDirectory: f.tmp.path)
        #expect(r.status == 0, "\(r.stderr)")
        let trimmed = bundle.split(separator: "/").joined(separator: "/")
        #expect(try String(contentsOfFile: "\(f.tmp.path)/\(trimmed)/rootfs/hello", encoding: .utf8) == "world")
        #expect(FileManager.default.fileExists(atPath: "\(f.tmp.path)/\(trimmed)/config.json"))
    }

    @Test func errorsNameLayerAndExitWithTheirCode() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("a", "a")
        var layer = try f.builder.layer(t.bytes(), compression: .gzip)
        layer.diffID = Digest.of([9])
        try f.image([layer])
        let r = try Command.run(Command.ociUnpack, ["unpack", "--platform", "linux/amd64", f.builder.path, f.bundle])
        #expect(r.status == UnpackError.Code.digestMismatch.exitCode)
        #expect(r.stderr.contains("oci-unpack: error: the uncompressed layer hashes to"))
        #expect(
            r.stderr.contains(
                "[layer 0, blob \(layer.descriptor.digest), media type application/vnd.oci.image.layer.v1.tar+gzip]"),
            "\(r.stderr)")
        #expect(try f.siblings().isEmpty)
        // An existing bundle.
        try FileManager.default.createDirectory(atPath: f.rootfs, withIntermediateDirectories: true)
        let exists = try Command.run(Command.ociUnpack, ["unpack", f.builder.path, f.bundle])
        #expect(exists.status == UnpackError.Code.bundleExists.exitCode)
        #expect(exists.stderr.contains("exists and is not empty (use --force to replace it)"))
    }

    /// A layer big enough that a signal arrives while it is being applied.
    static func slowImage(_ f: UnpackFixture) throws {
        var t = TarBuilder()
        for i in 0..<15_000 { t.file("d\(i % 100)/f\(i)", "\(i)") }
        try f.image([(t, .gzip)])
    }

    func startUnpack(_ f: UnpackFixture) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Command.ociUnpack)
        process.arguments = ["unpack", "-q", "--platform", "linux/amd64", f.builder.path, f.bundle]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Waits until the staging directory holds something (the unpack is under way).
    func waitForStaging(_ f: UnpackFixture) throws -> Bool {
        for _ in 0..<400 {
            if let staging = try f.siblings().first(where: { $0.hasPrefix(".bundle.oci-unpack-") }),
                let entries = try? FileManager.default.contentsOfDirectory(atPath: "\(f.tmp.path)/\(staging)/rootfs"),
                entries.count > 3
            {
                return true
            }
            usleep(5_000)
        }
        return false
    }

    /// Starts an unpack of a slow image, sends `signal` once it is under way, and waits for it.
    func interruptedUnpack(_ f: UnpackFixture, _ signal: Int32) throws -> Process {
        try Self.slowImage(f)
        let process = try startUnpack(f)
        let started = try waitForStaging(f)
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        try #require(started, "the unpack finished before signal \(signal) could reach it")
        return process
    }

    /// Every terminating signal is handled like SIGTERM: staging removed, the interrupted code.
    @Test(.timeLimit(.minutes(2)), arguments: [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM])
    func signalInTheMiddleLeavesNothing(signal: Int32) throws {
        let f = try UnpackFixture()
        let process = try interruptedUnpack(f, signal)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == UnpackError.Code.interrupted.exitCode)
        #expect(try f.siblings().isEmpty)
    }

    /// SIGQUIT during `--force`: the Swift runtime's crash report does not run, the unpack stops,
    /// and the old bundle stays as it was.
    @Test(.timeLimit(.minutes(2)))
    func sigquitDuringForceKeepsTheOldBundle() throws {
        let f = try UnpackFixture()
        var old = TarBuilder()
        old.file("old", "old")
        try f.image(old)
        try f.unpack()
        try Self.slowImage(f)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Command.ociUnpack)
        process.arguments = ["unpack", "-q", "--force", "--platform", "linux/amd64", f.builder.path, f.bundle]
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        try process.run()
        let started = try waitForStaging(f)
        kill(process.processIdentifier, SIGQUIT)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(started)
        #expect(process.terminationStatus == UnpackError.Code.interrupted.exitCode, "\(stderr)")
        #expect(!stderr.contains("crashed"), "\(stderr)")
        #expect(stderr.contains("interrupted by signal \(SIGQUIT) (SIGQUIT)"), "\(stderr)")
        #expect(try f.read("old") == "old")
        #expect(try f.siblings() == ["bundle"])
    }

    /// A file-size limit (RLIMIT_FSIZE) makes the write fail with EFBIG: an ordinary io error
    /// naming the entry, not death by SIGXFSZ, and nothing left behind.
    @Test(.timeLimit(.minutes(2)))
    func fileSizeLimitIsAnOrdinaryError() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("big", String(repeating: "x", count: 1 << 20))
        try f.image(t)
        let r = try f.unpackUnderFileSizeLimit()
        #expect(r.status == UnpackError.Code.io.exitCode, "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains("big") && r.stderr.contains("File too large"), "\(r.stderr)")
        #expect(try f.siblings().isEmpty)
    }

    @Test(.timeLimit(.minutes(2)))
    func killDashNineLeavesNoCompleteBundleAndTheNextRunSucceeds() throws {
        let f = try UnpackFixture()
        _ = try interruptedUnpack(f, SIGKILL)
        #expect(!FileManager.default.fileExists(atPath: f.bundle), "a half bundle never sits at the target")
        let again = try Command.run(
            Command.ociUnpack, ["unpack", "-q", "--platform", "linux/amd64", f.builder.path, f.bundle])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try f.siblings() == ["bundle"], "the killed run's staging directory is cleaned up")
        #expect(try f.read("d7/f14907") == "14907")
    }
}

/// `--user` is checked before anything is unpacked, and its errors name `--user`, not the image.
@Suite struct UserOptionTests {
    static func image() throws -> UnpackFixture {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
        t.file("etc/group", "root:x:0:\n")
        try f.image(t)
        return f
    }

    @Test(arguments: [
        ("4294967295", "id 4294967295 is out of range"), ("1000:", "expected uid, name, uid:gid"),
        (":0", "expected uid, name, uid:gid"), ("0:99999999999", "id 99999999999 is out of range"),
    ])
    func malformedUserIsAnInvalidArgument(user: String, message: String) throws {
        let f = try Self.image()
        let r = try Command.run(Command.ociUnpack, ["unpack", "-q", "--user", user, f.builder.path, f.bundle])
        #expect(r.status == UnpackError.Code.invalidArgument.exitCode, "\(r.stderr)")
        #expect(r.stderr.contains("in --user: \(message)"), "\(r.stderr)")
        #expect(try f.siblings().isEmpty)
    }

    @Test func unknownUserNamesTheOption() throws {
        let f = try Self.image()
        let r = try Command.run(Command.ociUnpack, ["unpack", "-q", "--user", "app", f.builder.path, f.bundle])
        #expect(r.status == UnpackError.Code.notFound.exitCode, "\(r.stderr)")
        #expect(
            r.stderr.contains("user \"app\" (from --user \"app\") is not in the image's /etc/passwd"), "\(r.stderr)")
        #expect(try f.siblings().isEmpty)
    }

    /// The image's own User out of range is the image's fault.
    @Test func imageUserOutOfRangeIsInvalidImage() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("a", "a")
        let layer = try f.builder.layer(t.bytes(), compression: .gzip)
        f.builder.indexEntries = []
        f.builder.tag(
            try f.builder.image(layers: [layer], execution: ImageConfig.Execution(user: "4294967295")), "latest")
        try f.builder.write()
        let error = try f.expectFailure(.invalidImage, "in the image's User: id 4294967295 is out of range")
        #expect(error != nil)
    }

    /// Empty components do not count as directories: `a` + 300 slashes + `b` is one deep.
    @Test func emptyComponentsAreNotDepth() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("a" + String(repeating: "/", count: 300) + "b", "x")
        try f.image(t)
        try f.unpack()
        #expect(try f.read("a/b") == "x")
    }

    /// Text that names no existing path but reads as a registry reference (what podman is given)
    /// gets the docker:// form in the error; a path that is plainly a path gets none.
    @Test(
        arguments: [
            ("alpine", "alpine", "use docker://alpine (docker.io/library/alpine:latest)"),
            (
                "docker.io/library/alpine", "docker.io/library/alpine",
                "use docker://docker.io/library/alpine (docker.io/library/alpine:latest)"
            ),
            (
                "127.0.0.1:5077/ex/app:v1", "127.0.0.1:5077/ex/app",
                "use docker://127.0.0.1:5077/ex/app:v1 (127.0.0.1:5077/ex/app:v1)"
            ),
            ("./alpine", "./alpine", nil), ("/nonexistent/alpine", "/nonexistent/alpine", nil),
            ("Alpine Linux", "Alpine Linux", nil),
        ] as [(String, String, String?)])
    func aRegistryReferenceGivenAsALayoutGetsTheDockerForm(text: String, layout: String, hint: String?) throws {
        let tmp = try TemporaryDirectory()
        let target = tmp.path + "/bundle"
        let r = try Command.run(Command.ociUnpack, ["unpack", text, target], currentDirectory: tmp.path)
        ExitCodeTests.expectOneErrorLine(r, .notFound, "image layout \(layout) cannot be opened")
        if let hint {
            #expect(r.stderr.contains("reads as a registry reference: to pull it, \(hint)"), "\(r.stderr)")
        } else {
            #expect(!r.stderr.contains("registry reference"), "\(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: target))
    }
}
