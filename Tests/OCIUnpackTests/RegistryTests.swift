import Foundation
import OCIImage
import OCIUnpack
import OCIUnpackCLI
import Registries
import Testing
import UnpackTestSupport

import struct OCIImage.Platform

/// Pulls from Debian's docker-registry, started on 127.0.0.1 by each test, with the example image
/// (a multi-platform index with gzip, zstd and mixed variants) pushed by skopeo.
@Suite(.serialized) struct RegistryTests {
    static let amd64 = Platform(os: "linux", architecture: "amd64")

    /// The example layout, written once per test.
    final class Example {
        let tmp: TemporaryDirectory
        var layout: String { tmp.path + "/layout" }

        init() throws {
            tmp = try TemporaryDirectory()
            try ExampleImage.write(to: layout, busybox: try ExampleImage.hostBusybox())
        }

        /// `skopeo copy --all` of tag `latest` to `destination` (`docker://HOST/REPO:TAG`).
        func push(to destination: String, extra: [String] = []) throws {
            let copy = try Command.run(
                "skopeo", ["copy", "--quiet", "--all"] + extra + ["oci:\(layout):latest", destination])
            try #require(copy.status == 0, "skopeo copy to \(destination): \(copy.stderr)")
        }

        func localDigest() throws -> Digest {
            try Unpacker().treeListing(
                "oci:\(layout):latest", request: ResolutionRequest(platform: RegistryTests.amd64)
            )
            .digest()
        }
    }

    static func tree(_ reference: String, _ unpacker: Unpacker = Unpacker(registries: RegistryClientAccess()))
        throws(UnpackError) -> Digest
    {
        try unpacker.treeListing(reference, request: ResolutionRequest(platform: amd64)).digest()
    }

    @Test(.timeLimit(.minutes(2))) func aPulledTreeEqualsTheLocalOne() throws {
        let registry = try TestRegistry(.plain)
        let example = try Example()
        try example.push(to: "docker://\(registry.host)/example/app:v1", extra: ["--dest-tls-verify=false"])
        let reference = "docker://\(registry.host)/example/app:v1"
        #expect(try Self.tree(reference) == (try example.localDigest()))

        let inspect = try Command.run(Command.ociUnpack, ["inspect", "--platform", "linux/amd64", "--json", reference])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any])
        #expect(object["reference"] as? String == reference)
        #expect((object["candidates"] as? [Any])?.count == 3)

        let bundle = example.tmp.path + "/bundle"
        let unpack = try Command.run(
            Command.ociUnpack, ["unpack", "-q", "--platform", "linux/amd64", reference, bundle])
        #expect(unpack.status == 0, "\(unpack.stderr)")
        #expect(FileManager.default.fileExists(atPath: bundle + "/rootfs/app/message.txt"))

        // By digest, and what is missing.
        let index = try #require(
            try Unpacker(registries: RegistryClientAccess()).resolve(
                reference, request: ResolutionRequest(platform: Self.amd64)
            ).steps.first)
        #expect(try Self.tree("docker://\(registry.host)/example/app@\(index.digest)") == (try example.localDigest()))
        let noTag = try Command.run(Command.ociUnpack, ["inspect", "docker://\(registry.host)/example/app:nope"])
        #expect(noTag.status == 66)
        #expect(noTag.stderr.contains("registry \(registry.host), repository example/app has no manifest nope"))
    }

    /// The pulled bundle starts in runc, as the local one does (RuncEndToEndTests).
    @Test(.enabled(if: rootTestsRun, "runc needs root"), .timeLimit(.minutes(2)))
    func runcStartsAPulledBundle() throws {
        let registry = try TestRegistry(.plain)
        let example = try Example()
        try example.push(to: "docker://\(registry.host)/example/app:v1", extra: ["--dest-tls-verify=false"])
        let bundle = example.tmp.path + "/bundle"
        let unpack = try Command.run(
            Command.ociUnpack,
            ["unpack", "-q", "--platform", "linux/amd64", "docker://\(registry.host)/example/app:v1", bundle])
        try #require(unpack.status == 0, "\(unpack.stderr)")
        let run = try Command.run(
            "runc",
            ["--root", example.tmp.path + "/runc-state", "run", "--bundle", bundle, "oci-unpack-pull-\(getpid())"])
        #expect(run.status == 0, "runc: \(run.stderr)")
        #expect(run.stdout.hasPrefix("hello from the oci-unpack example\nuid=1000(app)"), "\(run.stdout)")
    }

    /// The umoci-built image (whiteouts, hardlinks, devices, setuid), pushed by skopeo in gzip and
    /// in zstd: each pulled tree is the tree `umoci unpack` wrote.
    @Test(.enabled(if: rootTestsRun, "umoci builds images with devices and owners as root"), .timeLimit(.minutes(3)))
    func theUmociBuiltImagePullsToUmocisTree() throws {
        let registry = try TestRegistry(.plain)
        let tmp = try TemporaryDirectory()
        let build = try Command.run("bash", ["-c", UmociEndToEndTests.buildScript, "build", tmp.path])
        try #require(build.status == 0, "building the image with umoci/skopeo failed: \(build.stderr)")
        for (tag, extra) in [("gzip", [String]()), ("zstd", ["--dest-compress-format", "zstd", "--dest-compress"])] {
            let reference = "docker://\(registry.host)/umoci/debianish:\(tag)"
            let copy = try Command.run(
                "skopeo",
                ["copy", "--quiet", "--dest-tls-verify=false"] + extra + ["oci:\(tmp.path)/img:t", reference])
            try #require(copy.status == 0, "skopeo copy: \(copy.stderr)")
            let compared = try Command.run(
                Command.ociUnpack,
                ["tree-digest", "--platform", "linux/amd64", reference, "--rootfs", tmp.path + "/reference/rootfs"])
            #expect(compared.status == 0, "\(tag): \(compared.stdout)\(compared.stderr)")
        }
    }

    /// oci-unpack holds no HTTP stack: it hands docker:// references to oci-unpack-registry, and
    /// says so when that cannot be run; the library refuses them without a RegistryAccess.
    @Test func docker_referencesGoToTheRegistryExecutable() throws {
        let binary = try Data(contentsOf: URL(fileURLWithPath: Command.ociUnpack))
        #expect(binary.range(of: Data("NIOPosix".utf8)) == nil, "oci-unpack links swift-nio")
        let tmp = try TemporaryDirectory()
        let alone = tmp.path + "/oci-unpack"
        try FileManager.default.copyItem(atPath: Command.ociUnpack, toPath: alone)
        let local = try Command.run(alone, ["inspect", "docker://127.0.0.1:1/example/app:v1"])
        #expect(local.status == 64)
        #expect(
            local.stderr.contains("docker:// references are pulled by oci-unpack-registry, which cannot be run from ")
                && local.stderr.contains("/oci-unpack-registry (No such file or directory)"), "\(local.stderr)")
        // Local images need nothing else.
        let example = try Example()
        let inspect = try Command.run(alone, ["inspect", "--platform", "linux/amd64", "oci:\(example.layout):latest"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let refused = #expect(throws: UnpackError.self) {
            try Unpacker().resolve(
                "docker://127.0.0.1:1/example/app:v1", request: ResolutionRequest(platform: Self.amd64))
        }
        #expect(refused?.code == .invalidArgument)
        #expect(refused?.message.contains("without registry access") == true)
    }

    @Test(.timeLimit(.minutes(2))) func basicAuthOverTLSWithAPrivateCA() throws {
        let password = "s3cret-Pa55"
        let registry = try TestRegistry(.tlsBasic(user: "alice", password: password))
        let example = try Example()
        try example.push(
            to: "docker://\(registry.host)/private/app:v1",
            extra: ["--dest-creds", "alice:\(password)", "--dest-cert-dir", registry.certDirectory])
        let reference = "docker://\(registry.host)/private/app:v1"
        let base = ["tree-digest", "--platform", "linux/amd64", reference]

        let good = try Command.run(
            Command.ociUnpack, base + ["--creds", "alice:\(password)", "--cert-dir", registry.certDirectory])
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout.hasPrefix((try example.localDigest()).description))

        let anonymous = try Command.run(Command.ociUnpack, base + ["--cert-dir", registry.certDirectory])
        #expect(anonymous.status == 77)
        #expect(anonymous.stderr.contains("requires credentials (basic auth)"))

        let wrong = try Command.run(
            Command.ociUnpack, base + ["--creds", "alice:wrong", "--cert-dir", registry.certDirectory])
        #expect(wrong.status == 77)
        #expect(wrong.stderr.contains("basic auth as alice"))
        #expect(!wrong.stderr.contains("wrong"), "a password never appears")

        let untrusted = try Command.run(Command.ociUnpack, base + ["--creds", "alice:\(password)"])
        #expect(untrusted.status == 74)
        #expect(untrusted.stderr.contains("TLS"))
        #expect(!untrusted.stderr.contains(password))

        let unverified = try Command.run(
            Command.ociUnpack, base + ["--creds", "alice:\(password)", "--tls-verify=false"])
        #expect(unverified.status == 0, "\(unverified.stderr)")

        // An auth file in the usual place serves as well as --creds.
        let home = example.tmp.path + "/home"
        try FileManager.default.createDirectory(atPath: home + "/.docker", withIntermediateDirectories: true)
        let auth = Data("alice:\(password)".utf8).base64EncodedString()
        try Data(#"{"auths":{"\#(registry.host)":{"auth":"\#(auth)"}}}"#.utf8).write(
            to: URL(fileURLWithPath: home + "/.docker/config.json"))
        let fromFile = try Command.run(
            Command.ociUnpack, base + ["--cert-dir", registry.certDirectory],
            environment: ["HOME": home, "PATH": "/usr/bin:/bin"])
        #expect(fromFile.status == 0, "\(fromFile.stderr)")

        // A credential helper (docker-credential-NAME on PATH), named by credHelpers for this
        // registry or by credsStore for all; one that has nothing leaves the pull anonymous.
        let bin = example.tmp.path + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let helper = """
            #!/bin/sh
            [ "$1" = get ] || exit 2
            server=$(cat)
            if [ "$server" = "\(registry.host)" ]; then
                printf '{"ServerURL":"%s","Username":"alice","Secret":"%s"}' "$server" "\(password)"
            else
                echo "credentials not found in native keychain"; exit 1
            fi
            """
        try helper.write(toFile: bin + "/docker-credential-test", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin + "/docker-credential-test")
        let environment = ["HOME": home, "PATH": "\(bin):/usr/bin:/bin"]
        for config in [
            #"{"credHelpers":{"\#(registry.host)":"test"}}"#,
            #"{"credsStore":"test","auths":{"\#(registry.host)":{}}}"#,
        ] {
            try Data(config.utf8).write(to: URL(fileURLWithPath: home + "/.docker/config.json"))
            let helped = try Command.run(
                Command.ociUnpack, base + ["--cert-dir", registry.certDirectory], environment: environment)
            #expect(helped.status == 0, "\(config): \(helped.stderr)")
        }
        try Data(#"{"credHelpers":{"\#(registry.host)":"absent"}}"#.utf8).write(
            to: URL(fileURLWithPath: home + "/.docker/config.json"))
        let absent = try Command.run(
            Command.ociUnpack, base + ["--cert-dir", registry.certDirectory], environment: environment)
        #expect(absent.status == 66, "\(absent.stderr)")
        #expect(absent.stderr.contains("the credential helper docker-credential-absent"), "\(absent.stderr)")
        // A helper with nothing for the registry: anonymous, refused by the registry.
        try helper.replacingOccurrences(of: registry.host, with: "elsewhere.example").write(
            toFile: bin + "/docker-credential-test", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin + "/docker-credential-test")
        try Data(#"{"credsStore":"test"}"#.utf8).write(to: URL(fileURLWithPath: home + "/.docker/config.json"))
        let nothing = try Command.run(
            Command.ociUnpack, base + ["--cert-dir", registry.certDirectory], environment: environment)
        #expect(nothing.status == 77, "\(nothing.stderr)")
        #expect(nothing.stderr.contains("requires credentials (basic auth): give --creds"), "\(nothing.stderr)")
    }

    @Test(.timeLimit(.minutes(2))) func tokenAuthThroughTheChallengesRealm() throws {
        let registry = try TestRegistry(.token(user: "bob", password: "t0ken-Pass"))
        let example = try Example()
        try example.push(
            to: "docker://\(registry.host)/team/app:v1",
            extra: ["--dest-tls-verify=false", "--dest-creds", "bob:t0ken-Pass"])
        let reference = "docker://\(registry.host)/team/app:v1"
        let base = ["tree-digest", "--platform", "linux/amd64", reference]
        let good = try Command.run(Command.ociUnpack, base + ["--creds", "bob:t0ken-Pass"])
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout.hasPrefix((try example.localDigest()).description))
        // An anonymous token grants nothing; a wrong password gets no token.
        let anonymous = try Command.run(Command.ociUnpack, base)
        #expect(anonymous.status == 77)
        #expect(anonymous.stderr.contains("an anonymous token from 127.0.0.1"))
        let wrong = try Command.run(Command.ociUnpack, base + ["--creds", "bob:nope"])
        #expect(wrong.status == 77)
        #expect(wrong.stderr.contains("the token service 127.0.0.1"))
        #expect(wrong.stderr.contains("as bob"))
        #expect(!wrong.stderr.contains("nope"))
    }

    @Test(.timeLimit(.minutes(3))) func faultsAreRetriedResumedOrRefused() throws {
        let registry = try TestRegistry(.plain)
        let example = try Example()
        try example.push(to: "docker://\(registry.host)/example/app:v1", extra: ["--dest-tls-verify=false"])
        let expected = try example.localDigest()
        func pull(_ rules: [(String, FaultProxy.Fault, Int)]) throws -> Result<Digest, UnpackError> {
            let proxy = try FaultProxy(upstream: registry.host, rules: rules)
            let reference = "docker://\(proxy.host)/example/app:v1"
            return Result { () throws(UnpackError) in try Self.tree(reference) }
        }
        // 500s, then success; 429 with Retry-After; a connection dropped mid-blob, resumed.
        #expect(try pull([("/blobs/", .status(500, retryAfter: nil), 2)]).get() == expected)
        #expect(try pull([("/manifests/", .status(429, retryAfter: 1), 1)]).get() == expected)
        #expect(try pull([("/blobs/sha256:", .drop(afterBytes: 1000), 1)]).get() == expected)
        // Altered bytes, a manifest that does not match its digest, an endless body, a redirect loop.
        let corrupt = try pull([("/blobs/sha256:", .corrupt, 0)])
        #expect(throws: UnpackError.self) { try corrupt.get() }
        if case .failure(let error) = corrupt {
            // The config is the first blob read whole: its digest refuses it.
            #expect(error.code == .digestMismatch)
        }
        let manifest = try pull([("/manifests/v1", .corrupt, 0)])
        if case .failure(let error) = manifest {
            // Refused by Docker-Content-Digest before its (now broken) JSON is parsed.
            #expect(error.code == .digestMismatch)
            #expect(error.message.contains("Docker-Content-Digest"))
        } else {
            Issue.record("an altered manifest was accepted")
        }
        let endless = try pull([("/blobs/sha256:", .endless, 0)])
        if case .failure(let error) = endless {
            #expect(error.code == .sizeMismatch)
        } else {
            Issue.record("an endless body was accepted")
        }
        let loop = try pull([("/manifests/", .redirectLoop, 0)])
        if case .failure(let error) = loop {
            #expect(error.code == .io)
            #expect(error.message.contains("redirects"))
        } else {
            Issue.record("a redirect loop was followed")
        }
        // skopeo's --retry-times and --retry-delay: one 503 fails a run allowed no retry, and is
        // retried after the fixed delay by a run allowed one.
        for (retries, succeeds) in [("0", false), ("1", true)] {
            let proxy = try FaultProxy(
                upstream: registry.host, rules: [("/manifests/", .status(503, retryAfter: nil), 1)])
            let r = try Command.run(
                Command.ociUnpack,
                [
                    "tree-digest", "--platform", "linux/amd64", "--retry-times", retries, "--retry-delay", "0.2s",
                    "docker://\(proxy.host)/example/app:v1",
                ])
            if succeeds {
                #expect(r.status == 0 && r.stdout.hasPrefix(expected.description), "\(r.stderr)")
            } else {
                ExitCodeTests.expectOneErrorLine(r, .io, "503")
            }
        }
        let badDelay = try Command.run(
            Command.ociUnpack, ["tree-digest", "--retry-delay", "soon", "docker://\(registry.host)/x:v1"])
        ExitCodeTests.expectOneErrorLine(badDelay, .invalidArgument, "--retry-delay \"soon\" is not a duration")
        let down = try pull([("/blobs/", .status(503, retryAfter: 0), 0)])
        if case .failure(let error) = down {
            #expect(error.code == .io)
            #expect(error.message.contains("503"))
        } else {
            Issue.record("a registry that always fails was accepted")
        }
    }
}
