import ArgumentParser
import FoundationEssentials
import Glibc
import Logging
import OCIUnpack
import Synchronization

/// The documented `unpack --json` object (docs/unpacking.md): inspect's keys for the image as it
/// was resolved, and what the unpack did.
struct UnpackDocument: Encodable {
    let result: UnpackResult
    let store: String?
    let warnings: [String]
    let seconds: [Int: Double]

    enum CodingKeys: String, CodingKey {
        case bundle, configFile, rootfs, entries, applied, warnings, store, mount
    }

    /// One layer as it was applied.
    struct Applied: Encodable {
        let index: Int
        let digest: String
        let entries: Int
        let seconds: Double?
        /// The mirror, registry or cache that served the blob, when it was fetched from one.
        let servedBy: String?
    }

    func encode(to encoder: any Encoder) throws {
        try result.image.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(result.bundle, forKey: .bundle)
        try c.encode(result.bundle + "/config.json", forKey: .configFile)
        try c.encode(result.rootfs, forKey: .rootfs)
        try c.encode(result.entries, forKey: .entries)
        let origins = result.layerOrigins
        let applied = result.image.layers.enumerated().map { i, layer in
            Applied(
                index: i, digest: layer.descriptor.digest.description,
                entries: i < result.entries.count ? result.entries[i] : 0, seconds: seconds[i], servedBy: origins[i])
        }
        try c.encode(applied, forKey: .applied)
        try c.encode(warnings, forKey: .warnings)
        try c.encodeIfPresent(store, forKey: .store)
        if store != nil,
            let bytes = FileManager.default.contents(atPath: result.bundle + "/rootfs.mount.json"),
            let mount = try? JSONDecoder().decode(StoreMountSpec.self, from: bytes)
        {
            try c.encode(mount, forKey: .mount)
        }
    }
}

/// What `unpack --json` gathers while it runs: the warnings given, and each layer's time from its
/// first progress report to its last.
final class UnpackRecorder: Sendable {
    private struct State {
        var warnings: [String] = []
        var started: [Int: ContinuousClock.Instant] = [:]
        var seconds: [Int: Double] = [:]
    }
    private let state = Mutex(State())

    func warn(_ message: String) { state.withLock { $0.warnings.append(message) } }

    func progress(_ report: UnpackProgress) {
        let now = ContinuousClock.now
        state.withLock { s in
            let start = s.started[report.layerIndex] ?? now
            s.started[report.layerIndex] = start
            if report.layerFinished {
                let elapsed = now - start
                s.seconds[report.layerIndex] =
                    Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            }
        }
    }

    var warnings: [String] { state.withLock { $0.warnings } }
    var seconds: [Int: Double] { state.withLock { $0.seconds } }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove a bundle: unmount a store bundle's rootfs, remove the directory, drop its store record.",
        discussion: "Never crosses into another mount; refuses a directory without config.json.")

    @Argument(help: "The bundle directory.")
    var bundle: String

    func run() throws {
        do throws(UnpackError) {
            try Unpacker().removeBundle(bundle)
        } catch {
            throw CLIFailure(error: error, json: false).report()
        }
    }
}

struct Store: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "Inspect and prune a layer store (--store DIR).",
        subcommands: [List.self, Prune.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "The store's layers: chain ID, size on disk, the bundles that use them.")

        @Argument(help: "The store directory.")
        var store: String

        @Flag(help: "Print a JSON array instead of text.")
        var json = false

        func run() throws {
            let layers: [StoreLayer]
            do throws(UnpackError) {
                layers = try Unpacker().storeLayers(at: store)
            } catch {
                throw CLIFailure(error: error, json: json).report()
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: (try? encoder.encode(layers)) ?? Data(), as: UTF8.self))
                return
            }
            for layer in layers {
                let users = layer.bundles.isEmpty ? "unused" : layer.bundles.joined(separator: " ")
                print("\(layer.chainID)  \(layer.size)  \(users)")
            }
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prune",
            abstract: "Remove layers no live bundle uses (never one another process is populating or mounting).")

        @Argument(help: "The store directory.")
        var store: String

        func run() throws {
            let result: StorePruneResult
            do throws(UnpackError) {
                result = try Unpacker().pruneStore(at: store)
            } catch {
                throw CLIFailure(error: error, json: false).report()
            }
            for bundle in result.forgottenBundles { print("forgot bundle \(bundle) (gone)") }
            for layer in result.removedLayers { print("removed \(layer)") }
            for layer in result.busyLayers { print("kept \(layer) (in use by another process)") }
        }
    }
}
