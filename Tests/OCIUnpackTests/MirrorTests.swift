import Foundation
import OCIImage
import OCIUnpack
import OCIUnpackCLI
import Testing
import UnpackTestSupport

/// registries.conf mirrors against real registries on 127.0.0.1: Debian's docker-registry as the
/// origin, and a second one as a pull-through cache of it (`proxy.remoteurl`), as a site runs one.
@Suite(.serialized) struct MirrorTests {
    /// The example image pushed to an origin registry, and a registries.conf naming `mirror`.
    final class Site {
        let example: RegistryTests.Example
        let origin: TestRegistry
        var conf: String { example.tmp.path + "/registries.conf" }
        var reference: String { "docker://\(origin.host)/example/app:v1" }

        init() throws {
            example = try RegistryTests.Example()
            origin = try TestRegistry(.plain)
            try example.push(to: "docker://\(origin.host)/example/app:v1", extra: ["--dest-tls-verify=false"])
        }

        func name(mirrors: [String], extra: String = "") throws {
            var text = """
                [[registry]]
                location = "\(origin.host)"
                \(extra)

                """
            for mirror in mirrors {
                text += """
                    [[registry.mirror]]
                    location = "\(mirror)"
                    insecure = true

                    """
            }
            try text.write(toFile: conf, atomically: true, encoding: .utf8)
        }

        func unpack(_ reference: String? = nil, into name: String) throws -> (CommandResult, String) {
            let bundle = example.tmp.path + "/" + name
            let r = try Command.run(
                Command.ociUnpack,
                [
                    "unpack", "--platform", "linux/amd64", "--registries-conf", conf, "--retry-times", "0",
                    reference ?? self.reference, bundle,
                ])
            return (r, bundle)
        }

        func layers() throws -> [String] {
            let r = try Command.run(
                Command.ociUnpack,
                ["inspect", "--json", "--platform", "linux/amd64", "--registries-conf", conf, reference])
            let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            return (object?["layers"] as? [[String: Any]])?.compactMap { $0["digest"] as? String } ?? []
        }
    }

    /// The pull is served by the cache (which stores what it served); with the origin stopped, the
    /// image pulled before still unpacks through it.
    @Test func aPullThroughCacheServesThePullAndOutlivesTheOrigin() throws {
        let site = try Site()
        let mirror = try TestRegistry(.pullThrough(remote: site.origin.host))
        try site.name(mirrors: [mirror.host])
        let (first, bundle) = try site.unpack(into: "first")
        try #require(first.status == 0, "\(first.stderr)")
        #expect(FileManager.default.fileExists(atPath: bundle + "/rootfs/bin/busybox"))
        let layers = try site.layers()
        #expect(layers.count == 3)
        #expect(
            Set(layers).isSubset(of: Set(mirror.storedBlobs)), "the cache served every layer: \(mirror.storedBlobs)")
        let expected = try site.example.localDigest()
        // The origin is gone: the cache still serves the tag and the blobs it stored.
        site.origin.halt()
        let tree = try Command.run(
            Command.ociUnpack,
            [
                "tree-digest", "--platform", "linux/amd64", "--registries-conf", site.conf, "--retry-times", "0",
                site.reference,
            ])
        #expect(tree.status == 0, "\(tree.stderr)")
        #expect(tree.stdout.hasPrefix(expected.description), "\(tree.stdout)")
    }

    /// A mirror that is not there: the origin serves, with a warning naming the mirror.
    @Test func aMirrorThatIsDownFallsBackToTheOrigin() throws {
        let site = try Site()
        let gone = "127.0.0.1:\(try TestRegistry.freePort())"
        try site.name(mirrors: [gone])
        let (r, bundle) = try site.unpack(into: "bundle")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: bundle + "/config.json"))
        #expect(r.stderr.contains("mirror \(gone)/example/app could not serve"), "\(r.stderr)")
        // One that refuses (403, as a registry answers for a repository it lacks) passes on too.
        let refusing = try FaultProxy(
            upstream: site.origin.host,
            rules: [("/manifests/", .status(403, retryAfter: nil), 0), ("/blobs/", .status(403, retryAfter: nil), 0)])
        try site.name(mirrors: [refusing.host])
        let (refused, refusedBundle) = try site.unpack(into: "refused")
        #expect(refused.status == 0, "\(refused.stderr)")
        #expect(FileManager.default.fileExists(atPath: refusedBundle + "/config.json"))
        #expect(refused.stderr.contains("mirror \(refusing.host)/example/app could not serve"), "\(refused.stderr)")
    }

    /// A mirror that alters bytes is refused, not read around: the pull fails and leaves nothing.
    @Test func aMirrorServingAlteredBytesIsRefused() throws {
        let site = try Site()
        let liar = try FaultProxy(upstream: site.origin.host, rules: [("/blobs/sha256:", .corrupt, 0)])
        try site.name(mirrors: [liar.host])
        let (r, bundle) = try site.unpack(into: "bundle")
        #expect(r.status == UnpackError.Code.digestMismatch.exitCode, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: bundle))
    }

    /// `blocked` refuses the namespace before anything is asked; a `location` moves it.
    @Test func blockedAndRelocatedNamespaces() throws {
        let site = try Site()
        try site.name(mirrors: [], extra: "blocked = true")
        let (blocked, bundle) = try site.unpack(into: "bundle")
        #expect(blocked.status == UnpackError.Code.policyRejected.exitCode, "\(blocked.stderr)")
        #expect(blocked.stderr.contains("blocked by registries.conf"), "\(blocked.stderr)")
        #expect(!FileManager.default.fileExists(atPath: bundle))
        // An alias host that only registries.conf knows: prefix → the origin's location.
        try """
        [[registry]]
        prefix = "images.example.test"
        location = "\(site.origin.host)/example"
        """.write(toFile: site.conf, atomically: true, encoding: .utf8)
        let (moved, movedBundle) = try site.unpack("docker://images.example.test/app:v1", into: "moved")
        #expect(moved.status == 0, "\(moved.stderr)")
        #expect(FileManager.default.fileExists(atPath: movedBundle + "/config.json"))
        // A broken file is an error naming its line, before any registry is asked.
        try "[[registry]\n".write(toFile: site.conf, atomically: true, encoding: .utf8)
        let (broken, _) = try site.unpack(into: "broken")
        #expect(broken.status == UnpackError.Code.invalidArgument.exitCode, "\(broken.stderr)")
        #expect(
            broken.stderr.contains("/registries.conf:1"),
            "\(broken.stderr)")
    }

    /// `docker://NAME` without a registry: an alias, else the search registries in order (one
    /// that is down passes to the next); enforcing refuses an ambiguous name.
    @Test func shortNamesResolveAsPodmanResolvesThem() throws {
        let site = try Site()
        let gone = "127.0.0.1:\(try TestRegistry.freePort())"
        try """
        unqualified-search-registries = ["\(gone)", "\(site.origin.host)"]
        [aliases]
        "shorty" = "\(site.origin.host)/example/app"
        """.write(toFile: site.conf, atomically: true, encoding: .utf8)
        let (searched, searchedBundle) = try site.unpack("docker://example/app:v1", into: "searched")
        #expect(searched.status == 0, "\(searched.stderr)")
        #expect(FileManager.default.fileExists(atPath: searchedBundle + "/config.json"))
        // What inspect (and a --verifier-dir program) sees is the name it resolved to.
        let inspect = try Command.run(
            Command.ociUnpack,
            [
                "inspect", "--json", "--platform", "linux/amd64", "--registries-conf", site.conf, "--retry-times", "0",
                "docker://example/app:v1",
            ])
        let object = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any]
        #expect(object?["reference"] as? String == site.reference, "\(inspect.stdout) \(inspect.stderr)")
        let (aliased, aliasedBundle) = try site.unpack("docker://shorty:v1", into: "aliased")
        #expect(aliased.status == 0, "\(aliased.stderr)")
        #expect(FileManager.default.fileExists(atPath: aliasedBundle + "/config.json"))
        try """
        unqualified-search-registries = ["\(gone)", "\(site.origin.host)"]
        short-name-mode = "enforcing"
        """.write(toFile: site.conf, atomically: true, encoding: .utf8)
        let (ambiguous, bundle) = try site.unpack("docker://example/app:v1", into: "ambiguous")
        #expect(ambiguous.status == UnpackError.Code.invalidArgument.exitCode, "\(ambiguous.stderr)")
        #expect(
            ambiguous.stderr.contains("\(gone)/example/app, \(site.origin.host)/example/app"), "\(ambiguous.stderr)")
        #expect(!FileManager.default.fileExists(atPath: bundle))
    }

    /// containerd's hosts.toml for the origin: a node-local mirror (a proxy in front of a
    /// pull-through cache that, as Spegel, refuses requests without `ns=`, and here also without
    /// the configured header) serves every blob, and, trusted only to pull, never a tag; trusted
    /// to resolve, it serves the tag too. `unpack --json` names the mirror of each layer.
    @Test func hostsTomlMirrorsServeBlobsAndResolveOnlyWhenTrusted() throws {
        let site = try Site()
        let cache = try TestRegistry(.pullThrough(remote: site.origin.host))
        let ns = "ns=127.0.0.1%3A\(site.origin.port)"
        let node = try FaultProxy(
            upstream: cache.host, rules: [("/v2/", .require(query: ns, header: ("X-Node", "n1")), 0)])
        let root = site.example.tmp.path + "/certs.d"
        let directory = root + "/127.0.0.1_\(site.origin.port)_"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func configure(_ capabilities: String, host: String) throws {
            try """
            [host."http://\(host)"]
              capabilities = \(capabilities)
              [host."http://\(host)".header]
                X-Node = "n1"
            """.write(toFile: directory + "/hosts.toml", atomically: true, encoding: .utf8)
        }
        func unpack(_ name: String) throws -> (CommandResult, [String: Any]?, String) {
            let bundle = site.example.tmp.path + "/" + name
            let r = try Command.run(
                Command.ociUnpack,
                [
                    "unpack", "--json", "--platform", "linux/amd64", "--hosts-dir", root, "--retry-times", "0",
                    site.reference, bundle,
                ])
            return (r, try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], bundle)
        }
        func servedBy(_ object: [String: Any]?) -> [String] {
            (object?["applied"] as? [[String: Any]])?.map { $0["servedBy"] as? String ?? "-" } ?? []
        }
        try configure("[\"pull\"]", host: node.host)
        let (pulled, object, bundle) = try unpack("pulled")
        try #require(pulled.status == 0, "\(pulled.stderr)")
        #expect(FileManager.default.fileExists(atPath: bundle + "/rootfs/bin/busybox"))
        let mirror = "mirror http://\(node.host)/v2/example/app"
        #expect(servedBy(object) == [mirror, mirror, mirror], "\(pulled.stdout)")
        let blobs = node.requests.filter { $0.hasPrefix("GET /v2/example/app/blobs/") }
        #expect(blobs.count >= 3 && blobs.allSatisfy { $0.hasSuffix("?" + ns) }, "\(node.requests)")
        #expect(!node.requests.contains { $0.contains("/manifests/v1") }, "a pull-only mirror resolved the tag")
        // Trusted to resolve: the tag is asked there too, with ns=.
        try configure("[\"pull\", \"resolve\"]", host: node.host)
        let (resolved, _, _) = try unpack("resolved")
        #expect(resolved.status == 0, "\(resolved.stderr)")
        #expect(node.requests.contains("GET /v2/example/app/manifests/v1?" + ns), "\(node.requests)")
        // A mirror that is down: the registry serves, with a warning naming the mirror.
        let gone = "127.0.0.1:\(try TestRegistry.freePort())"
        try configure("[\"pull\", \"resolve\"]", host: gone)
        let (fallback, fellBack, _) = try unpack("fallback")
        #expect(fallback.status == 0, "\(fallback.stderr)")
        let registry = "registry \(site.origin.host)/example/app"
        #expect(servedBy(fellBack) == [registry, registry, registry], "\(fallback.stdout)")
        #expect(fallback.stderr.contains("mirror http://\(gone)/v2/example/app could not serve"), "\(fallback.stderr)")
        // A mirror that alters bytes is refused, and nothing is left.
        let liar = try FaultProxy(upstream: site.origin.host, rules: [("/blobs/sha256:", .corrupt, 0)])
        try configure("[\"pull\"]", host: liar.host)
        let (lied, _, liedBundle) = try unpack("lied")
        #expect(lied.status == UnpackError.Code.digestMismatch.exitCode, "\(lied.stderr)")
        #expect(!FileManager.default.fileExists(atPath: liedBundle))
        // A broken file names its line; a --hosts-dir that is not there is refused.
        try "[host.\"http://\(node.host)\"]\ncapabilities = [\"pull\", \"mirror\"]\n".write(
            toFile: directory + "/hosts.toml", atomically: true, encoding: .utf8)
        let (broken, _, brokenBundle) = try unpack("broken")
        #expect(broken.status == UnpackError.Code.invalidArgument.exitCode, "\(broken.stderr)")
        #expect(broken.stderr.contains(directory + "/hosts.toml:2: "), "\(broken.stderr)")
        #expect(!FileManager.default.fileExists(atPath: brokenBundle))
        let missing = try Command.run(
            Command.ociUnpack,
            ["unpack", "--hosts-dir", root + "/nowhere", site.reference, site.example.tmp.path + "/x"])
        #expect(missing.status == UnpackError.Code.notFound.exitCode, "\(missing.stderr)")
        #expect(missing.stderr.contains("--hosts-dir \(root)/nowhere is not a directory"), "\(missing.stderr)")
    }
}
