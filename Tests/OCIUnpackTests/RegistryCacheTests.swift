import Foundation
import OCIImage
import OCIUnpack
import Registries
import Synchronization
import Testing
import UnpackTestSupport

/// `--cache DIR`: blobs pulled from Debian's docker-registry (on 127.0.0.1) are kept in an OCI
/// layout, reused without the network, never kept when they do not verify, shared by concurrent
/// runs, and bounded with least-recently-used eviction.
@Suite(.serialized) struct RegistryCacheTests {
    /// The files of `blobs/` (`sha256/HEX`), and their total size.
    static func blobs(_ cache: String) throws -> (names: Set<String>, bytes: Int64) {
        var names: Set<String> = []
        var bytes: Int64 = 0
        for algorithm in ["sha256", "sha512"] {
            let directory = "\(cache)/blobs/\(algorithm)"
            for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
                names.insert("\(algorithm)/\(name)")
                let attributes = try FileManager.default.attributesOfItem(atPath: "\(directory)/\(name)")
                bytes += (attributes[.size] as? NSNumber)?.int64Value ?? 0
            }
        }
        return (names, bytes)
    }

    static func ingest(_ cache: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: cache + "/ingest")
    }

    /// `oci-unpack ARGS` with the cache and the amd64 platform.
    static func run(_ arguments: [String], cache: String, _ extra: [String] = []) throws -> CommandResult {
        try Command.run(
            Command.ociUnpack,
            [arguments[0], "--platform", "linux/amd64", "--cache", cache] + extra + Array(arguments.dropFirst()))
    }

    /// Whether `rootfs` holds the tree of the example's amd64 image (`tree-digest IMAGE --rootfs`).
    static func sameAsLocal(_ rootfs: String, _ example: RegistryTests.Example) throws -> Bool {
        let compared = try Command.run(
            Command.ociUnpack,
            ["tree-digest", "--platform", "linux/amd64", "oci:\(example.layout):latest", "--rootfs", rootfs])
        return compared.status == 0
    }

    /// A warm cache and a warm store: the registry is stopped, and a bundle is still made, with
    /// no decompression (no layer is applied: every layer's entry count is 0).
    @Test(.enabled(if: rootTestsRun, "overlay mounts need root"), .timeLimit(.minutes(2)))
    func aWarmCacheAndAWarmStoreNeedNeitherNetworkNorDecompression() throws {
        var registry: TestRegistry? = try TestRegistry(.plain)
        let example = try RegistryTests.Example()
        let host = registry?.host ?? ""
        try example.push(to: "docker://\(host)/example/app:v1", extra: ["--dest-tls-verify=false"])
        let reference = "docker://\(host)/example/app:v1"
        let cache = example.tmp.path + "/cache"
        let store = example.tmp.path + "/store"
        let first = try Self.run(
            ["unpack", "-q", reference, example.tmp.path + "/one"], cache: cache, ["--store", store])
        try #require(first.status == 0, "\(first.stderr)")
        defer { _ = try? Command.run(Command.ociUnpack, ["remove", example.tmp.path + "/one"]) }
        registry = nil  // stopped
        let second = try Self.run(
            ["unpack", "--json", reference, example.tmp.path + "/two"], cache: cache, ["--store", store])
        try #require(second.status == 0, "\(second.stderr)")
        defer { _ = try? Command.run(Command.ociUnpack, ["remove", example.tmp.path + "/two"]) }
        let object = try JSONValue(parsing: Array(second.stdout.utf8))
        #expect(object["entries"]?.arrayValue?.allSatisfy { $0 == .int(0) } == true, "\(second.stdout)")
        // Nothing was fetched: no layer says where it came from.
        #expect(object["applied"]?.arrayValue?.allSatisfy { $0["servedBy"] == nil } == true, "\(second.stdout)")
        #expect(object["mount"]?["type"] == .string("overlay"))
        #expect(try Self.sameAsLocal(example.tmp.path + "/two/rootfs", example))
    }

    @Test(.timeLimit(.minutes(2))) func aWarmCacheUnpacksWithoutTheRegistry() throws {
        let registry = try TestRegistry(.plain)
        let example = try RegistryTests.Example()
        try example.push(to: "docker://\(registry.host)/example/app:v1", extra: ["--dest-tls-verify=false"])
        let reference = "docker://\(registry.host)/example/app:v1"
        let cache = example.tmp.path + "/cache/blobs-of-pulls"
        let expected = try example.localDigest()

        let first = try Self.run(["unpack", "-q", reference, example.tmp.path + "/one"], cache: cache)
        try #require(first.status == 0, "\(first.stderr)")
        // An OCI layout: the tag recorded under its full name, every blob of the image stored.
        let image = try Unpacker(registries: RegistryClientAccess()).resolve(
            reference, request: ResolutionRequest(platform: RegistryTests.amd64))
        let wanted = Set(
            ([image.manifestDescriptor.digest, image.manifest.config.digest] + image.layers.map(\.descriptor.digest)
                + image.steps.map(\.digest)).map { "sha256/\($0.encoded)" })
        #expect(wanted.isSubset(of: try Self.blobs(cache).names))
        #expect(try Self.ingest(cache).isEmpty)
        let index = try String(contentsOfFile: cache + "/index.json", encoding: .utf8)
        #expect(index.contains("\"org.opencontainers.image.ref.name\" : \"\(registry.host)/example/app:v1\""))
        #expect(try RegistryTests.tree("oci:\(cache)@\(image.steps[0].digest)") == expected)

        // The tag moves (to the gzip variant alone): the cache keeps what it recorded unless
        // --pull always asks the registry, which updates the record.
        let copy = try Command.run(
            "skopeo",
            ["copy", "--quiet", "--dest-tls-verify=false", "oci:\(example.layout):amd64-gzip", reference])
        try #require(copy.status == 0, "\(copy.stderr)")
        let moved = try Unpacker(registries: RegistryClientAccess()).resolve(
            reference, request: ResolutionRequest(platform: RegistryTests.amd64))
        let cached = Unpacker(registry: RegistryOptions(cache: .init(path: cache)), registries: RegistryClientAccess())
        let asked = Unpacker(
            registry: RegistryOptions(cache: .init(path: cache, pull: .always)), registries: RegistryClientAccess())
        let request = ResolutionRequest(platform: RegistryTests.amd64)
        #expect(try cached.resolve(reference, request: request).manifestDescriptor == image.manifestDescriptor)
        #expect(try asked.resolve(reference, request: request).manifestDescriptor == moved.manifestDescriptor)
        #expect(try cached.resolve(reference, request: request).manifestDescriptor == moved.manifestDescriptor)
        let always = try Self.run(
            ["unpack", "-q", reference, example.tmp.path + "/two"], cache: cache, ["--pull", "always"])
        #expect(always.status == 0, "\(always.stderr)")

        registry.halt()
        // The tag, the documents and the layers all come from the cache.
        let offline = try Self.run(["unpack", "--json", reference, example.tmp.path + "/three"], cache: cache)
        #expect(offline.status == 0, "\(offline.stderr)")
        let served = try JSONValue(parsing: Array(offline.stdout.utf8))["applied"]?.arrayValue?.map { $0["servedBy"] }
        #expect(
            served?.isEmpty == false && served?.allSatisfy { $0 == .string("cache \(cache)") } == true,
            "\(offline.stdout)")
        #expect(try Self.sameAsLocal(example.tmp.path + "/three/rootfs", example))
        #expect(try RegistryTests.tree(reference, cached) == expected)
        #expect(
            try RegistryTests.tree("docker://\(registry.host)/example/app@\(image.steps[0].digest)", cached) == expected
        )

        // --pull never: what the cache lacks is an error naming the cache.
        let never = try Self.run(
            ["tree-digest", "docker://\(registry.host)/example/app:v2"], cache: cache, ["--pull", "never"])
        #expect(never.status == 66)
        #expect(never.stderr.contains("is not in the cache \(cache) (--pull never)"), "\(never.stderr)")
        let noCache = try Command.run(Command.ociUnpack, ["tree-digest", "--pull", "never", reference])
        #expect(noCache.status == 64)
        #expect(noCache.stderr.contains("--cache-max-size and --pull need --cache DIR"))
    }

    @Test(.timeLimit(.minutes(2))) func whatDoesNotVerifyIsNeverKept() throws {
        let registry = try TestRegistry(.plain)
        let example = try RegistryTests.Example()
        try example.push(to: "docker://\(registry.host)/example/app:v1", extra: ["--dest-tls-verify=false"])
        let cache = example.tmp.path + "/cache"
        let image = try Unpacker().resolve(
            "oci:\(example.layout):latest", request: ResolutionRequest(platform: RegistryTests.amd64))
        let layer = image.layers[0].descriptor.digest
        let bundle = example.tmp.path + "/bundle"

        // One layer's bytes altered on the way: refused, nothing unpacked, nothing of it cached.
        let proxy = try FaultProxy(upstream: registry.host, rules: [("/blobs/\(layer)", .corrupt, 0)])
        let corrupt = try Self.run(["unpack", "-q", "docker://\(proxy.host)/example/app:v1", bundle], cache: cache)
        #expect([82, 85].contains(corrupt.status), "\(corrupt.stderr)")
        #expect(corrupt.stderr.contains("\(layer)"))
        #expect(!FileManager.default.fileExists(atPath: bundle))
        #expect(!(try Self.blobs(cache).names.contains("sha256/\(layer.encoded)")))
        #expect(try Self.ingest(cache).isEmpty)

        // The same cache, straight from the registry: the layer is fetched and kept.
        let reference = "docker://\(registry.host)/example/app:v1"
        let good = try Self.run(["unpack", "-q", reference, bundle], cache: cache)
        #expect(good.status == 0, "\(good.stderr)")
        #expect(try Self.blobs(cache).names.contains("sha256/\(layer.encoded)"))

        // A cached layer altered on disk: the unpack that reads it fails and drops it; the next
        // run fetches it again.
        let path = "\(cache)/blobs/sha256/\(layer.encoded)"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count / 2] ^= 0xff
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let tampered = try Self.run(["tree-digest", reference], cache: cache)
        #expect([82, 85].contains(tampered.status), "\(tampered.stderr)")
        #expect(tampered.stderr.contains("removed from the cache"), "\(tampered.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path))
        let again = try Self.run(["tree-digest", reference], cache: cache)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.hasPrefix((try example.localDigest()).description))
        #expect(FileManager.default.fileExists(atPath: path))
    }

    @Test(.timeLimit(.minutes(2))) func concurrentRunsShareOneCache() throws {
        let registry = try TestRegistry(.plain)
        let example = try RegistryTests.Example()
        try example.push(to: "docker://\(registry.host)/example/app:v1", extra: ["--dest-tls-verify=false"])
        let reference = "docker://\(registry.host)/example/app:v1"
        let cache = example.tmp.path + "/cache"
        let results = Mutex<[Int: CommandResult]>([:])
        let base = example.tmp.path
        DispatchQueue.concurrentPerform(iterations: 3) { i in
            let result = Result { try Self.run(["unpack", "-q", reference, base + "/b\(i)"], cache: cache) }
            results.withLock { $0[i] = try? result.get() }
        }
        for i in 0..<3 {
            let result = try #require(results.withLock { $0[i] })
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try Self.sameAsLocal(base + "/b\(i)/rootfs", example))
        }
        #expect(try Self.ingest(cache).isEmpty)
        registry.halt()
        let offline = try Self.run(["tree-digest", reference], cache: cache, ["--pull", "never"])
        #expect(offline.stdout.hasPrefix((try example.localDigest()).description), "\(offline.stderr)")
    }

    @Test(.timeLimit(.minutes(2))) func theBoundEvictsTheLeastRecentlyUsed() throws {
        let registry = try TestRegistry(.plain)
        let example = try RegistryTests.Example()
        try example.push(to: "docker://\(registry.host)/example/app:v1", extra: ["--dest-tls-verify=false"])
        let reference = "docker://\(registry.host)/example/app:v1"
        let zstd = ["--prefer-compression", "zstd"]
        let gzip = ["--prefer-compression", "gzip"]
        // The two amd64 variants' sizes, each pulled alone.
        for (name, preference) in [("zstd", zstd), ("gzip", gzip)] {
            let alone = try Self.run(["tree-digest", reference], cache: example.tmp.path + "/" + name, preference)
            try #require(alone.status == 0, "\(alone.stderr)")
        }
        let bound =
            max(try Self.blobs(example.tmp.path + "/zstd").bytes, try Self.blobs(example.tmp.path + "/gzip").bytes)
            + 4096
        let cache = example.tmp.path + "/bounded"
        let bounded = ["--cache-max-size", "\(bound)"]
        #expect(try Self.run(["tree-digest", reference], cache: cache, bounded + zstd).status == 0)
        #expect(try Self.run(["tree-digest", reference], cache: cache, bounded + gzip).status == 0)
        #expect(try Self.blobs(cache).bytes <= bound)
        // The gzip variant, used last, is whole; the zstd one lost what it did not share.
        registry.halt()
        let newest = try Self.run(["tree-digest", reference], cache: cache, gzip + ["--pull", "never"])
        #expect(newest.status == 0, "\(newest.stderr)")
        let evicted = try Self.run(["tree-digest", reference], cache: cache, zstd + ["--pull", "never"])
        #expect(evicted.status == 66, "\(evicted.stderr)")
        #expect(evicted.stderr.contains("lacks a blob"), "\(evicted.stderr)")
        let badSize = try Self.run(["tree-digest", reference], cache: cache, ["--cache-max-size", "lots"])
        #expect(badSize.status == 64)
        // Recorded tags are trusted: a cache others can write is refused.
        let shared = example.tmp.path + "/shared"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: false)
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: shared)
        let refused = try Self.run(["tree-digest", reference], cache: shared)
        #expect(refused.status == 64)
        #expect(
            refused.stderr.contains("with mode 777: the tags it records would be others' to choose"),
            "\(refused.stderr)")
    }
}
