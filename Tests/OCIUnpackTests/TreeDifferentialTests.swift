import Foundation
import OCIImage
import OCIUnpack
import Testing
import TreeCompare
import UnpackTestSupport

/// The in-memory tree (`verify-variants`, `tree-digest`) against the disk (`unpack`) over random
/// images: for every seed, either both succeed with the same listing, mtimes included, or both
/// refuse with the same code. A fixed seed set runs in the suite; `OCI_UNPACK_TREE_SEEDS=FIRST:COUNT`
/// (set by `hack/fuzz` to a random FIRST) runs others.
@Suite struct TreeDifferentialTests {
    /// SplitMix64: the same images for the same seed on every machine.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    }

    static let paths = ["a", "b", "c", "a/x", "a/y", "b/x", "a/x/z", "b/x/z", "c/d", "a/y/w"]
    static let targets = ["a", "../a", "/b", "x", "/c/d", "a/x", "../../b/x", "y"]
    static let times = [1_600_000_000, 1_700_000_000, 1_750_000_000]

    /// Two to four layers of one to eight entries each, over a small set of names, so that entries
    /// collide: directories described twice, files replaced by directories and back, whiteouts and
    /// opaque markers over lower and same-layer paths, symlinked parents, hardlinks to lower files.
    static func layers(seed: UInt64) -> [TarBuilder] {
        var random = Random(state: seed)
        var out: [TarBuilder] = []
        for _ in 0..<(2 + random.below(3)) {
            var tar = TarBuilder()
            for _ in 0..<(1 + random.below(8)) {
                let path = random.pick(paths)
                let mtime = random.pick(times)
                switch random.below(10) {
                case 0, 1, 2:
                    tar.add(
                        .init(
                            path: path, kind: .file(content: Array("\(random.below(3))".utf8)),
                            mode: random.pick([0o644, 0o600, 0o755]), mtime: mtime))
                case 3, 4, 5:
                    tar.add(.init(path: path + "/", kind: .directory, mode: random.pick([0o755, 0o700]), mtime: mtime))
                case 6:
                    tar.add(.init(path: path, kind: .symlink(target: random.pick(targets)), mtime: mtime))
                case 7:
                    tar.add(.init(path: path, kind: .hardlink(target: random.pick(paths)), mtime: mtime))
                case 8:
                    tar.whiteout(path)
                default:
                    tar.opaque(path)
                }
            }
            out.append(tar)
        }
        return out
    }

    static var seeds: [UInt64] {
        if let spec = ProcessInfo.processInfo.environment["OCI_UNPACK_TREE_SEEDS"],
            case let parts = spec.split(separator: ":"), parts.count == 2,
            let first = UInt64(parts[0]), let count = UInt64(parts[1])
        {
            return Array(first..<(first + count))
        }
        return Array(0..<300)
    }

    @Test(.enabled(if: rootTestsRun, "the image's owners are restored only as root"))
    func theInMemoryTreeIsTheUnpackedTree() throws {
        var failures: [String] = []
        for seed in Self.seeds {
            let f = try UnpackFixture()
            try f.image(Self.layers(seed: seed).map { ($0, LayerCompression.none) })
            let disk = Result { () throws(UnpackError) in
                _ = try f.unpack()
                return try TreeListing(directory: f.rootfs)
            }
            let memory = Result { () throws(UnpackError) in
                try Unpacker().treeListing(
                    "oci:\(f.builder.path):latest", request: ResolutionRequest(platform: VariantFixture.amd64))
            }
            switch (disk, memory) {
            case (.success(let a), .success(let b)):
                let (differences, count) = b.differences(to: a, ignoringMtime: false, limit: 5)
                if count != 0 { failures.append("seed \(seed): \(differences)") }
            case (.failure(let a), .failure(let b)):
                if a.code != b.code { failures.append("seed \(seed): disk \(a) / memory \(b)") }
            case (.failure(let a), .success):
                failures.append("seed \(seed): only the disk refused: \(a)")
            case (.success, .failure(let b)):
                failures.append("seed \(seed): only the memory refused: \(b)")
            }
            if failures.count >= 10 { break }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    /// Found by the differential test (seed 295): a hardlink whose target lies inside the
    /// directory it replaces. The disk removed the directory first and failed on `linkat`
    /// (ENOENT, io); the memory linked the old node. Both now refuse it, before anything goes.
    @Test(.enabled(if: rootTestsRun, "the image's owners are restored only as root"))
    func aHardlinkIntoTheDirectoryItReplacesIsRefusedByBoth() throws {
        var lower = TarBuilder()
        lower.directory("a/x/")
        lower.file("a/x/z", "z")
        var upper = TarBuilder()
        upper.hardlink("a", to: "a/x/z")
        let f = try UnpackFixture()
        try f.image([(lower, LayerCompression.none), (upper, .none)])
        let disk = #expect(throws: UnpackError.self) { _ = try f.unpack() }
        let memory = #expect(throws: UnpackError.self) {
            _ = try Unpacker().treeListing(
                "oci:\(f.builder.path):latest", request: ResolutionRequest(platform: VariantFixture.amd64))
        }
        for error in [disk, memory] {
            #expect(error?.code == .corruptLayer)
            #expect(
                error?.message.contains("hardlink a points at a/x/z, inside the directory it would replace") == true)
        }
    }
}
