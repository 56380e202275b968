import Glibc

/// Which ids this process can give files, from /proc/self/uid_map and gid_map.
///
/// Root in the initial user namespace can give any id. Root in a user namespace (`unshare -r`,
/// rootless containers) can give only the ids its namespace maps: chown to another fails with
/// EINVAL, and creating devices or setting `trusted.*` xattrs fails with EPERM. Those entries are
/// treated as an ordinary user's are (a warning, not an error).
package struct IDMapping: Sendable, Equatable {
    /// Inclusive-exclusive ranges of ids inside this namespace that map to some id outside.
    package let uids: [Range<UInt64>]
    package let gids: [Range<UInt64>]

    /// The whole 32-bit range mapped: the initial user namespace (or one that maps everything).
    package var mapsEverything: Bool {
        Self.covers(uids, 0..<UInt64(UInt32.max)) && Self.covers(gids, 0..<UInt64(UInt32.max))
    }

    package init(uids: [Range<UInt64>], gids: [Range<UInt64>]) {
        self.uids = uids
        self.gids = gids
    }

    /// This process's maps; when they cannot be read (no /proc), the initial namespace's.
    package static let current: IDMapping = {
        let all: [Range<UInt64>] = [0..<(UInt64(UInt32.max))]
        return IDMapping(
            uids: read("/proc/self/uid_map") ?? all, gids: read("/proc/self/gid_map") ?? all)
    }()

    package func maps(uid: Int64, gid: Int64) -> Bool {
        Self.contains(uids, uid) && Self.contains(gids, gid)
    }

    /// The ids inside that `inside outside count` lines map (as the kernel's map files hold them).
    static func parse(_ text: [UInt8]) -> [Range<UInt64>] {
        IDMap.parsingKernelMap(text).map { UInt64($0.containerID)..<(UInt64($0.containerID) + UInt64($0.size)) }
    }

    private static func read(_ path: String) -> [Range<UInt64>]? {
        guard let bytes = try? OwnedFD.openForReading(path).readAll(limit: 1 << 16) else { return nil }
        return parse(bytes)
    }

    private static func contains(_ ranges: [Range<UInt64>], _ id: Int64) -> Bool {
        guard id >= 0 else { return false }
        return ranges.contains { $0.contains(UInt64(id)) }
    }

    private static func covers(_ ranges: [Range<UInt64>], _ wanted: Range<UInt64>) -> Bool {
        var next = wanted.lowerBound
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) where range.lowerBound <= next {
            next = max(next, range.upperBound)
        }
        return next >= wanted.upperBound
    }

    /// Whether this process has root's powers over every id: root in a namespace that maps
    /// everything (devices, any owner, `trusted.*` xattrs).
    package static var fullyPrivileged: Bool { geteuid() == 0 && current.mapsEverything }
}
