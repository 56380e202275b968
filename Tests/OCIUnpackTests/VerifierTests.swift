import Foundation
import Glibc
import OCIImage
import OCIUnpack
import OCIUnpackCLI
import Testing
import UnpackTestSupport

/// `--verifier-dir`: programs that decide, before any layer is fetched, whether an image may be
/// unpacked, called as containerd 2.0 calls its image verifiers.
@Suite struct VerifierTests {
    /// A fixture image and a verifier directory holding `scripts` (name → shell body).
    static func setUp(_ scripts: [String: String]) throws -> (UnpackFixture, String) {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("hello", "world")
        try f.image([(t, .gzip)])
        let directory = f.tmp.path + "/verifiers"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, body) in scripts {
            let path = directory + "/" + name
            try ("#!/bin/sh\n" + body).write(toFile: path, atomically: true, encoding: .utf8)
            try #require(chmod(path, 0o755) == 0)
        }
        return (f, directory)
    }

    static func unpack(_ f: UnpackFixture, _ extra: [String]) throws -> CommandResult {
        try Command.run(
            Command.ociUnpack,
            ["unpack", "--platform", "linux/amd64"] + extra + ["oci:\(f.builder.path):latest", f.bundle])
    }

    @Test func everyVerifierIsAskedWithTheNameDigestAndDescriptor() throws {
        let record =
            "echo \"$@\" > \"$(dirname \"$0\")/../$(basename \"$0\").args\"; cat > \"$(dirname \"$0\")/../$(basename \"$0\").stdin\"\n"
        let (f, directory) = try Self.setUp(["a-first": record, "b-second": record, "not-executable.txt": "exit 1\n"])
        try #require(chmod(directory + "/not-executable.txt", 0o644) == 0)
        let r = try Self.unpack(f, ["--verifier-dir", directory])
        #expect(r.status == 0, "\(r.stderr)")
        let resolved = try Unpacker().resolve(
            "oci:\(f.builder.path):latest",
            request: ResolutionRequest(platform: Platform(os: "linux", architecture: "amd64")))
        let digest = resolved.manifestDescriptor.digest.description
        for name in ["a-first", "b-second"] {
            let args = try String(contentsOfFile: f.tmp.path + "/\(name).args", encoding: .utf8)
            #expect(
                args
                    == "-name \(resolved.reference) -digest \(digest) -stdin-media-type application/vnd.oci.descriptor.v1+json\n"
            )
            let stdin = try JSONValue(
                parsing: Array(try Data(contentsOf: URL(fileURLWithPath: f.tmp.path + "/\(name).stdin"))))
            #expect(stdin["digest"] == .string(digest))
            #expect(stdin["mediaType"] == .string(resolved.manifestDescriptor.mediaType.rawValue))
            #expect(stdin["size"] == .int(resolved.manifestDescriptor.size))
        }
        #expect(try f.read("hello") == "world")
    }

    /// A refusal, a verifier that does not answer, one that writes too much, and an empty directory
    /// each refuse with the policy code, naming the program, and leave no bundle.
    @Test(arguments: [
        ("refuses", "echo 'not signed by the release key'; exit 3\n", "exit status 3: not signed by the release key"),
        ("sleeps", "exec sleep 600\n", "within 1.0 s and was killed"),
        ("chatters", "head -c 100000 /dev/zero\n", "wrote more than 32768 bytes"),
    ])
    func aVerifierThatDoesNotAcceptRefusesTheImage(name: String, body: String, message: String) throws {
        let (f, directory) = try Self.setUp(["0-accepts": "exit 0\n", name: body])
        let r = try Self.unpack(f, ["--verifier-dir", directory, "--verifier-timeout", "1"])
        ExitCodeTests.expectOneErrorLine(r, .policyRejected, "the verifier \(directory)/\(name) ")
        #expect(r.stderr.contains(message), "\(r.stderr)")
        #expect(UnpackError.Code.policyRejected.exitCode == 90)
        #expect(!FileManager.default.fileExists(atPath: f.bundle))
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.tmp.path).filter { $0.hasPrefix(".") }.isEmpty)
    }

    @Test func anEmptyVerifierDirectoryAdmitsNothing() throws {
        let (f, directory) = try Self.setUp([:])
        let r = try Self.unpack(f, ["--verifier-dir", directory])
        ExitCodeTests.expectOneErrorLine(r, .policyRejected, "holds no executable program")
        #expect(!FileManager.default.fileExists(atPath: f.bundle))
    }
}
