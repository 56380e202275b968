/// A user or group id map, as runtime-spec's `linux.uidMappings` and the `--uid-map` options of
/// umoci and podman give it: ranges of ids inside the container and the host ids they stand for.
public struct IDMap: Sendable, Equatable, CustomStringConvertible {
    /// `size` ids from `containerID` stand for `size` ids from `hostID`.
    public struct Range: Sendable, Equatable, CustomStringConvertible {
        /// The first id inside the container.
        public var containerID: UInt32
        /// The host id `containerID` stands for.
        public var hostID: UInt32
        /// How many ids the range holds.
        public var size: UInt32

        /// A range of `size` ids.
        public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
            self.containerID = containerID
            self.hostID = hostID
            self.size = size
        }

        /// `CONTAINER:HOST:SIZE`.
        public var description: String { "\(containerID):\(hostID):\(size)" }

        /// Parses `CONTAINER:HOST:SIZE` (decimal ids; a size of at least 1).
        public init(parsing text: String) throws(UnpackError) {
            let fields = text.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count == 3, let container = UInt32(fields[0]), let host = UInt32(fields[1]),
                let size = UInt32(fields[2]), size > 0
            else {
                throw UnpackError(
                    .invalidArgument,
                    "id map \"\(DisplayText.escaping(text))\" is not CONTAINER:HOST:SIZE (decimal ids, a size of at least 1)"
                )
            }
            self.init(containerID: container, hostID: host, size: size)
        }
    }

    /// The ranges, as given.
    public let ranges: [Range]

    /// The kernel's limit on the lines of a user namespace's id map.
    public static let maxRanges = 340

    /// A map of `ranges`, checked as the kernel checks a user namespace's map: every range
    /// non-empty and within the 32-bit ids, never holding id 4294967295 (`(uid_t)-1`), no two ranges overlapping inside or outside, at most
    /// 340 ranges. `name` (`--uid-map`) is for messages.
    public init(_ ranges: [Range], name: String) throws(UnpackError) {
        guard !ranges.isEmpty, ranges.count <= Self.maxRanges else {
            throw UnpackError(.invalidArgument, "\(name) needs between 1 and \(Self.maxRanges) ranges")
        }
        // Id 4294967295 is (uid_t)-1, which chown reads as "leave unchanged": a map that held it
        // would leave the image's root-owned files owned by host root. The kernel refuses it in a
        // user namespace's map (on either side), and so does this check.
        for range in ranges {
            guard range.size > 0, UInt64(range.containerID) + UInt64(range.size) <= 1 << 32,
                UInt64(range.hostID) + UInt64(range.size) <= 1 << 32
            else {
                throw UnpackError(.invalidArgument, "\(name) \(range) runs past the last 32-bit id")
            }
            guard UInt64(range.containerID) + UInt64(range.size) < 1 << 32,
                UInt64(range.hostID) + UInt64(range.size) < 1 << 32
            else {
                throw UnpackError(
                    .invalidArgument,
                    "\(name) \(range) maps id 4294967295, which is (uid_t)-1 (\"unchanged\" to chown); the kernel refuses it in a map"
                )
            }
        }
        for (i, a) in ranges.enumerated() {
            for b in ranges[(i + 1)...] {
                if Self.overlap(a.containerID, a.size, b.containerID, b.size) {
                    throw UnpackError(.invalidArgument, "\(name) ranges \(a) and \(b) overlap inside the container")
                }
                if Self.overlap(a.hostID, a.size, b.hostID, b.size) {
                    throw UnpackError(.invalidArgument, "\(name) ranges \(a) and \(b) overlap on the host")
                }
            }
        }
        self.ranges = ranges
    }

    /// The map of one range, `containerID` to `hostID` for `size` ids.
    public static func single(containerID: UInt32, hostID: UInt32, size: UInt32) -> IDMap {
        IDMap(unchecked: [Range(containerID: containerID, hostID: hostID, size: size)])
    }

    private init(unchecked ranges: [Range]) { self.ranges = ranges }

    /// The host id that container id `id` stands for, or nil when no range holds it.
    public func hostID(for id: UInt32) -> UInt32? {
        for range in ranges where id >= range.containerID && UInt64(id) < UInt64(range.containerID) + UInt64(range.size)
        {
            return range.hostID + (id - range.containerID)
        }
        return nil
    }

    /// The ranges, comma-separated, as `CONTAINER:HOST:SIZE`.
    public var description: String { ranges.map(\.description).joined(separator: ",") }

    private static func overlap(_ a: UInt32, _ aSize: UInt32, _ b: UInt32, _ bSize: UInt32) -> Bool {
        UInt64(a) < UInt64(b) + UInt64(bSize) && UInt64(b) < UInt64(a) + UInt64(aSize)
    }
}
