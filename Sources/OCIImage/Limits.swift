/// Resource limits for unpacking images from strangers. Each has a safe default, can be changed
/// (`oci-unpack unpack --limit NAME=VALUE`), and is reported with `limitExceeded` naming it.
public struct UnpackLimits: Sendable, Equatable {
    /// Uncompressed bytes of all layers together.
    public var maxUncompressedBytes: Int64
    /// Uncompressed bytes per compressed byte of one layer (decompression bombs), enforced once a
    /// layer is past `expansionRatioFloorBytes` (small, very compressible layers are normal).
    public var maxExpansionRatio: Int64
    /// Uncompressed bytes any layer may reach whatever its ratio; `maxExpansionRatio` applies past them.
    public var expansionRatioFloorBytes: Int64
    /// Tar entries in one layer.
    public var maxEntriesPerLayer: Int
    /// Bytes of an entry's path or link target.
    public var maxPathBytes: Int
    /// Components of an entry's path.
    public var maxPathDepth: Int
    /// Bytes of all extended attributes of one entry (PAX `SCHILY.xattr.*`).
    public var maxXattrBytesPerEntry: Int
    /// Bytes of `/etc/passwd` or `/etc/group` read from the rootfs for user lookup.
    public var maxUserDatabaseBytes: Int
    /// Bytes of symlink targets followed while resolving the parents of one layer's entries
    /// (crafted chains of long symlinks would otherwise cost milliseconds per entry).
    public var maxSymlinkBytesPerLayer: Int

    /// Limits with the given values; every default is safe for untrusted images.
    public init(
        maxUncompressedBytes: Int64 = 64 << 30, maxExpansionRatio: Int64 = 1000,
        expansionRatioFloorBytes: Int64 = 512 << 20, maxEntriesPerLayer: Int = 2_000_000, maxPathBytes: Int = 4096,
        maxPathDepth: Int = 256, maxXattrBytesPerEntry: Int = 1 << 20, maxUserDatabaseBytes: Int = 4 << 20,
        maxSymlinkBytesPerLayer: Int = 16 << 20
    ) {
        self.maxSymlinkBytesPerLayer = maxSymlinkBytesPerLayer
        self.maxUncompressedBytes = maxUncompressedBytes
        self.maxExpansionRatio = maxExpansionRatio
        self.expansionRatioFloorBytes = expansionRatioFloorBytes
        self.maxEntriesPerLayer = maxEntriesPerLayer
        self.maxPathBytes = maxPathBytes
        self.maxPathDepth = maxPathDepth
        self.maxXattrBytesPerEntry = maxXattrBytesPerEntry
        self.maxUserDatabaseBytes = maxUserDatabaseBytes
    }

    /// The names `--limit` accepts, with their current values.
    public var named: [(name: String, value: Int64)] {
        [
            ("uncompressed-bytes", maxUncompressedBytes), ("expansion-ratio", maxExpansionRatio),
            ("expansion-ratio-floor-bytes", expansionRatioFloorBytes), ("entries-per-layer", Int64(maxEntriesPerLayer)),
            ("path-bytes", Int64(maxPathBytes)), ("path-depth", Int64(maxPathDepth)),
            ("xattr-bytes-per-entry", Int64(maxXattrBytesPerEntry)),
            ("user-database-bytes", Int64(maxUserDatabaseBytes)),
            ("symlink-bytes-per-layer", Int64(maxSymlinkBytesPerLayer)),
        ]
    }

    /// Applies `NAME=VALUE` (VALUE a positive integer, optionally with a K, M, G or T suffix).
    public mutating func set(_ assignment: String) throws(UnpackError) {
        let parts = assignment.split(separator: "=", maxSplits: 1).map(String.init)
        let known = named.map(\.name).joined(separator: ", ")
        guard parts.count == 2, let value = Self.parseSize(parts[1]), value > 0 else {
            throw UnpackError(
                .invalidArgument,
                "--limit \"\(assignment.truncatedForMessage)\" is not NAME=POSITIVE-NUMBER (names: \(known))")
        }
        switch parts[0] {
        case "uncompressed-bytes": maxUncompressedBytes = value
        case "expansion-ratio": maxExpansionRatio = value
        case "expansion-ratio-floor-bytes": expansionRatioFloorBytes = value
        case "entries-per-layer": maxEntriesPerLayer = Int(value)
        case "path-bytes": maxPathBytes = Int(value)
        case "path-depth": maxPathDepth = Int(value)
        case "xattr-bytes-per-entry": maxXattrBytesPerEntry = Int(value)
        case "user-database-bytes": maxUserDatabaseBytes = Int(value)
        case "symlink-bytes-per-layer": maxSymlinkBytesPerLayer = Int(value)
        default:
            throw UnpackError(.invalidArgument, "unknown limit \"\(parts[0].truncatedForMessage)\" (names: \(known))")
        }
    }

    /// A byte count with an optional K, M, G or T suffix (powers of 1024).
    package static func parseSize(_ text: String) -> Int64? {
        let multipliers: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        if let last = text.last, let multiplier = multipliers[Character(last.uppercased())] {
            guard let base = Int64(text.dropLast()) else { return nil }
            let (product, overflow) = base.multipliedReportingOverflow(by: multiplier)
            return overflow ? nil : product
        }
        return Int64(text)
    }
}
