import ArgumentParser
import FoundationEssentials
import Glibc
import Logging
import OCIUnpack

/// How layers are decoded, for every command that reads them: the gzip decoder and the limits.
struct DecodingOptions: ParsableArguments {
    @Option(name: .customLong("gzip-decoder"), help: "isal (default, fast) or zlib (the reference implementation).")
    var gzipDecoder: String = "isal"

    @Option(
        name: .customLong("limit"),
        help: "NAME=VALUE: change a resource limit (repeatable; see docs/limits.md).")
    var limitAssignments: [String] = []

    func validate() throws {
        guard GzipDecoder(rawValue: gzipDecoder) != nil else {
            throw ValidationError("--gzip-decoder must be isal or zlib, not \"\(gzipDecoder)\"")
        }
    }

    var decoder: GzipDecoder { GzipDecoder(rawValue: gzipDecoder) ?? .isal }

    /// `limits` with each `--limit` applied.
    func limits(from limits: UnpackLimits = .init()) throws(UnpackError) -> UnpackLimits {
        var limits = limits
        for assignment in limitAssignments { try limits.set(assignment) }
        return limits
    }
}

/// `--alternatives`: read the alternative descriptors annotations name (docs/images.md).
struct AlternativeFlags: ParsableArguments {
    @Flag(
        name: .customLong("alternatives"),
        help: """
            Read alternative descriptors: an index entry or a layer whose annotation names an \
            equivalent manifest or layer in another compression (not standardised; see docs/images.md).
            """)
    var enabled = false

    @Option(
        name: .customLong("alternative-annotation"),
        help:
            "The annotation key that names alternatives (default zstd-compressed-alternative); implies --alternatives.")
    var key: String?

    func validate() throws {
        if let key, key.isEmpty { throw ValidationError("--alternative-annotation needs a key") }
    }

    /// The key to read, or nil when alternatives are ignored.
    var annotation: String? { key ?? (enabled ? Alternatives.defaultAnnotation : nil) }
}

/// Options of the commands that read layers without unpacking them.
struct ReadingOptions: ParsableArguments {
    @Flag(name: .customLong("ignore-mtime"), help: "Leave modification times out of listings and comparisons.")
    var ignoreMtime = false

    @OptionGroup var decoding: DecodingOptions

    func options(logger: Logger) throws(UnpackError) -> VerifyOptions {
        VerifyOptions(
            limits: try decoding.limits(), ignoreMtime: ignoreMtime, gzipDecoder: decoding.decoder,
            warn: { message in logger.warning("\(message)") })
    }
}

struct VerifyVariants: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-variants",
        abstract: "Prove that an index's variants of one image (gzip, zstd, …) yield the same filesystem.",
        discussion: """
            Groups the image's manifests by platform, streams every layer of every variant through its \
            decompressor with digests and diff_ids verified (nothing is written), and compares the \
            variants: same config, same diff_ids, or, when a publisher re-tarred, equal tree listings \
            built in memory. Exit 0 when every group agrees; 89 when variants differ; a failed \
            variant's own code (82 digest, 85 corrupt layer, …) otherwise. See docs/verify-variants.md.
            """)

    @Option(name: .long, help: "Verify this platform's variants (os/arch[/variant]; default: this machine's).")
    var platform: String?

    @Flag(name: .customLong("all-platforms"), help: "Verify the variants of every platform.")
    var allPlatforms = false

    @Flag(help: "Print the documented JSON object (docs/verify-variants.md) instead of text.")
    var json = false

    @Option(name: .customLong("max-differences"), help: "Differing paths to name per variant (all are counted).")
    var maxDifferences = 10

    @OptionGroup var reading: ReadingOptions

    @OptionGroup var registryFlags: RegistryFlags

    @OptionGroup var alternatives: AlternativeFlags

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "warning"

    @Argument(help: imageArgumentHelp)
    var image: String

    func validate() throws {
        if allPlatforms && platform != nil {
            throw ValidationError("--platform and --all-platforms exclude each other")
        }
        guard maxDifferences >= 0 else { throw ValidationError("--max-differences must be 0 or more") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("unknown log level \"\(logLevel)\"")
        }
    }

    func run() throws {
        LoggingSystem.bootstrap(EscapingLogHandler.standardError)
        var logger = Logger(label: "oci-unpack")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .warning
        let report: VariantReport
        do throws(UnpackError) {
            let unpacker = try registryFlags.unpacker(logger: logger)
            var options = try reading.options(logger: logger)
            options.maxDifferences = maxDifferences
            options.alternativeAnnotation = alternatives.annotation
            let wanted: Platform? =
                allPlatforms
                ? nil : try platform.map { (text) throws(UnpackError) in try Platform(parsing: text) } ?? .host
            report = try unpacker.verifyVariants(image, platform: wanted, options: options)
        } catch {
            throw CLIFailure(error: error, json: json).report()
        }
        if json {
            try printJSON(VariantReportDocument(report: report))
        } else {
            print(VariantText.render(report), terminator: "")
        }
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }
}

struct TreeDigest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tree-digest",
        abstract: "The digest (or the whole canonical listing) of an image's flattened tree or of a directory.",
        discussion: """
            IMAGE: its layers are applied in memory (digests verified, nothing written) and the tree \
            listed. --rootfs DIR lists a directory the same way, e.g. an unpacked bundle's rootfs. With \
            both, the two are compared: exit 0 when equal, 89 (with the first differing paths on stderr) \
            when not. See docs/verify-variants.md for the listing's format.
            """)

    @OptionGroup var resolution: ResolutionOptions

    @OptionGroup var reading: ReadingOptions

    @OptionGroup var registryFlags: RegistryFlags

    @Option(help: "List this directory (an unpacked rootfs) instead of, or to compare with, IMAGE.")
    var rootfs: String?

    @Flag(help: "Print the canonical listing instead of its digest.")
    var listing = false

    @Argument(help: imageArgumentHelp)
    var image: String?

    func validate() throws {
        if image == nil && rootfs == nil { throw ValidationError("give an IMAGE, --rootfs DIR, or both") }
    }

    func run() throws {
        LoggingSystem.bootstrap(EscapingLogHandler.standardError)
        let logger = resolution.makeLogger()
        let ignoreMtime = reading.ignoreMtime
        var listings: [(name: String, listing: TreeListing)] = []
        do throws(UnpackError) {
            let unpacker = try registryFlags.unpacker(logger: logger)
            let options = try reading.options(logger: logger)
            if let image {
                listings.append(
                    (image, try unpacker.treeListing(image, request: resolution.request(), options: options)))
            }
            if let rootfs { listings.append((rootfs, try TreeListing(directory: rootfs))) }
        } catch {
            throw CLIFailure(error: error, json: false).report()
        }
        for (name, tree) in listings {
            if listing {
                print(tree.text(ignoringMtime: ignoreMtime), terminator: "")
            } else {
                print("\(tree.digest(ignoringMtime: ignoreMtime))  \(DisplayText.escaping(name))")
            }
        }
        guard listings.count == 2 else { return }
        let (first, count) = listings[0].listing.differences(
            to: listings[1].listing, ignoringMtime: ignoreMtime, limit: 10)
        guard count > 0 else { return }
        writeStandardError(
            "oci-unpack: error: the image's tree and \(DisplayText.escaping(listings[1].name)) differ at \(VariantText.paths(count)):\n"
        )
        for difference in first {
            writeStandardError("  " + DisplayText.escaping(VariantText.describe(difference, "image", "rootfs")) + "\n")
        }
        throw ExitCode(UnpackError.Code.variantsDiffer.exitCode)
    }
}

/// The human-readable form of `verify-variants`.
enum VariantText {
    static func render(_ report: VariantReport) -> String {
        var out = ""
        func line(_ s: String) { out += DisplayText.escaping(s) + "\n" }
        line("image: \(report.reference)\(report.ignoreMtime ? " (mtimes ignored)" : "")")
        for group in report.groups {
            line("platform \(group.platform): \(group.verdict.rawValue) (\(counted(group.variants.count, "variant")))")
            for variant in group.variants {
                let layers = variant.layers.map { $0.format ?? $0.compression.rawValue }.joined(separator: ",")
                var verdict = variant.status.rawValue
                if let by = variant.sameBy { verdict += " (\(by == "diff_ids" ? "same diff_ids" : "same \(by)"))" }
                if variant.status == .differs {
                    var what: [String] = []
                    if variant.differenceCount > 0 { what.append(paths(variant.differenceCount)) }
                    if !variant.configDifferences.isEmpty {
                        what.append("config " + variant.configDifferences.joined(separator: ", "))
                    }
                    verdict += ": " + what.joined(separator: "; ")
                }
                line("  \(variant.digest)  \(variant.compression ?? "-")  [\(layers)]  \(verdict)")
                if let original = variant.alternativeOf {
                    line(
                        variant.alternativeLayers.isEmpty
                            ? "      alternative of \(original)"
                            : "      layers \(variant.alternativeLayers.map(String.init).joined(separator: ",")) read from their alternatives"
                    )
                }
                if let tree = variant.treeDigest { line("      tree \(tree)") }
                if let reason = variant.reason { line("      \(variant.errorCode ?? ""): \(reason)") }
                for difference in variant.differences {
                    line("      " + describe(difference, "reference", "this"))
                }
            }
            for entry in group.unverifiable {
                line("  \(entry.entry.digest)  refused: \(entry.entry.reason)")
            }
        }
        line("verdict: \(report.verdict.rawValue)")
        return out
    }

    static func paths(_ count: Int) -> String { counted(count, "path") }

    static func describe(_ difference: TreeListing.Difference, _ a: String, _ b: String) -> String {
        switch difference.kind {
        case "only-in-reference": "\(difference.path): only in \(a)"
        case "only-in-variant": "\(difference.path): only in \(b)"
        default: "\(difference.path): " + difference.fields.joined(separator: "; ")
        }
    }
}
