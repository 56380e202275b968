import Foundation
import Glibc
import LayerApply
import LayerStream
import OCIImage
import Resolution
import RuntimeBundle
import TarArchive
import Trust
import UnpackSystem

/// Fuzz targets, kept in an ordinary library so that every build type-checks them; hack/fuzz links
/// each into a libFuzzer binary. Each returns normally for any input: a crash, a sanitizer report
/// or a failed containment check (`fatalError`) is a finding.

/// Image references, platform strings, digests and compression lists.
package enum FuzzReference {
    package static func run(_ data: UnsafeBufferPointer<UInt8>) {
        let text = String(decoding: data, as: UTF8.self)
        if let reference = try? ImageReference(parsing: text, isDirectory: { $0.count % 2 == 0 }) {
            // Whatever parses must print back to something that parses to the same value.
            guard let again = try? ImageReference(parsing: reference.description, isDirectory: { $0.count % 2 == 0 }),
                again.selector == reference.selector
            else { fatalError("reference \(reference) does not round-trip") }
        }
        if let platform = try? Platform(parsing: text) {
            guard platform == platform.normalized, platform.matchRank(of: platform) == 0 else {
                fatalError("platform \(platform) is not normalised or does not match itself")
            }
        }
        if let digest = try? Digest(parsing: text) {
            guard digest.description == text else { fatalError("digest \(digest) does not round-trip") }
            guard !digest.encoded.contains("/"), !digest.encoded.contains(".") else {
                fatalError("unsafe digest \(digest)")
            }
        }
        _ = try? ResolutionRequest.parseCompressionPreference(text)
    }
}

/// Index, manifest and config JSON, through the same checks the layout applies, and the same bytes
/// through the template reader and writer.
package enum FuzzDocuments {
    package static func run(_ data: UnsafeBufferPointer<UInt8>) {
        let bytes = Array(data)
        for type in [MediaType.ociIndex, .dockerManifestList] {
            _ = try? ImageDocuments.index(from: bytes, expected: type, where: "fuzz")
        }
        for type in [MediaType.ociManifest, .dockerManifest] {
            _ = try? ImageDocuments.manifest(from: bytes, expected: type, where: "fuzz")
        }
        if let config = try? ImageDocuments.config(from: bytes, where: "fuzz") {
            _ = config.platform.normalized
        }
        // registries.conf: the TOML reader and the settings and lookups built on it.
        if let text = String(validating: bytes, as: UTF8.self) {
            var conf = RegistriesConf()
            try? conf.merge(text: text, file: "fuzz")
            for registry in conf.registries {
                _ = try? conf.endpoints(host: registry.prefix, repository: "a/b", selector: ":t", byDigest: false)
            }
        }
        // containerd's hosts.toml, on the same TOML reader.
        if let text = String(validating: bytes, as: UTF8.self) {
            _ = try? ContainerdHosts.endpoints(
                text: text, file: "fuzz/hosts.toml", directory: "fuzz", host: "a.example:5000", repository: "b/c")
        }
        // The signature policy, its lookup, and signature payloads (untrusted JSON).
        if let policy = try? Policy(parsing: bytes, file: "fuzz"),
            let reference = DockerIdentity.parse("a.example/b/c:t")
        {
            _ = policy.requirements(for: .docker(reference, display: "fuzz"))
        }
        _ = SignedClaims.simpleSigning(bytes)
        _ = SignedClaims.sigstore(bytes)
        _ = ParsedSignature.classify(bytes)
        // registries.d: the YAML subset and the sections built on it.
        if let text = String(validating: bytes, as: UTF8.self) {
            var registriesD = RegistriesD()
            try? registriesD.merge(text: text, file: "fuzz")
        }
        // The template reader: what parses must be written as JSON that reads back to the same text.
        if let value = try? JSONValue(parsing: bytes) {
            let text = value.formatted()
            guard let again = try? JSONValue(parsing: text), again.formatted() == text else {
                fatalError("JSON \(String(decoding: text, as: UTF8.self)) does not read back")
            }
        }
    }
}

/// An arbitrary tar stream applied onto a fresh root, twice (so the second application meets what
/// the first made), with a canary beside the root that must stay untouched.
package enum FuzzTar {
    nonisolated(unsafe) private static var workspace: String?

    package static func run(_ data: UnsafeBufferPointer<UInt8>) {
        let base = prepareWorkspace()
        let root = base + "/root"
        mkdir(root, 0o755)
        defer { checkCanary(base) }
        defer { try? removeDirectoryTree(root) }
        guard
            let applier = try? Applier(
                rootPath: root, options: ApplyOptions(limits: UnpackLimits(maxEntriesPerLayer: 10_000)))
        else {
            fatalError("cannot open \(root)")
        }
        let bytes = Array(data)
        for _ in 0..<2 {
            guard let reader = try? TarReader(upstream: MemoryStream(bytes)) else { break }
            _ = try? applier.apply(reader)
        }
    }

    private static func prepareWorkspace() -> String {
        if let workspace { return workspace }
        let base = "/tmp/oci-unpack-fuzz-\(getpid())"
        mkdir(base, 0o755)
        mkdir(base + "/canary", 0o755)
        _ = FileManager.default.createFile(atPath: base + "/canary/file", contents: Data("canary".utf8))
        workspace = base
        return base
    }

    private static func checkCanary(_ base: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: base))?.sorted() ?? []
        guard names == ["canary"] else { fatalError("something was created beside the root: \(names)") }
        let canary = (try? FileManager.default.contentsOfDirectory(atPath: base + "/canary")) ?? []
        guard canary == ["file"], FileManager.default.contents(atPath: base + "/canary/file") == Data("canary".utf8)
        else {
            fatalError("the canary changed: \(canary)")
        }
        var st = stat()
        guard lstat(base + "/canary/file", &st) == 0, st.st_nlink == 1, st.st_mode & 0o7777 == 0o644 else {
            fatalError("the canary's metadata changed")
        }
    }
}
