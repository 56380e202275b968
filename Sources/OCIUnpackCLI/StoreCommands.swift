import ArgumentParser
import FoundationEssentials
import Glibc
import Logging
import OCIUnpack

/// `unpack --json`: what was unpacked, and for a store bundle the mount that is its rootfs.
enum UnpackJSON {
    struct Object: Encodable {
        var bundle: String
        var reference: String
        var manifest: String
        var platform: String
        var layers: Int
        var entries: [Int]
        var store: String?
        var mount: StoreMountSpec?
    }

    static func render(_ result: UnpackResult, store: String?) -> [UInt8] {
        let mount = store.flatMap { _ -> StoreMountSpec? in
            guard let bytes = FileManager.default.contents(atPath: result.bundle + "/rootfs.mount.json") else {
                return nil
            }
            return try? JSONDecoder().decode(StoreMountSpec.self, from: bytes)
        }
        let object = Object(
            bundle: result.bundle, reference: result.image.reference.description,
            manifest: result.image.manifestDescriptor.digest.description, platform: result.image.platform.description,
            layers: result.image.layers.count, entries: result.entries, store: store, mount: mount)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(object)).map { [UInt8]($0) } ?? []
    }
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
