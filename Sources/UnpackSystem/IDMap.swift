/// The one id map type of oci-unpack (the system layer's user namespaces and maps read back from
/// the kernel use it too). A user or group id map, as runtime-spec's `linux.uidMappings` and the `--uid-map` options of
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

    }

    /// The ranges, as given.
    public let ranges: [Range]

    /// The kernel's limit on the lines of a user namespace's id map.
    public static let maxRanges = 340

    /// The map of one range, `containerID` to `hostID` for `size` ids.
    public static func single(containerID: UInt32, hostID: UInt32, size: UInt32) -> IDMap {
        IDMap(unchecked: [Range(containerID: containerID, hostID: hostID, size: size)])
    }

    /// A map of `ranges` as they are (the kernel's own maps, read back; a range made here).
    package init(unchecked ranges: [Range]) { self.ranges = ranges }

    /// The host id that container id `id` stands for, or nil when no range holds it.
    public func hostID(for id: UInt32) -> UInt32? {
        for range in ranges where id >= range.containerID && UInt64(id) < UInt64(range.containerID) + UInt64(range.size)
        {
            return range.hostID + (id - range.containerID)
        }
        return nil
    }

    /// The ranges of an id map file of the kernel's (`/proc/PID/uid_map`: `INSIDE OUTSIDE COUNT`
    /// lines), as they are.
    package static func parsingKernelMap(_ bytes: [UInt8]) -> [Range] {
        String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { UInt32($0) }
            return fields.count == 3 ? Range(containerID: fields[0], hostID: fields[1], size: fields[2]) : nil
        }
    }

    /// The ranges, comma-separated, as `CONTAINER:HOST:SIZE`.
    public var description: String { ranges.map(\.description).joined(separator: ",") }

    package static func overlap(_ a: UInt32, _ aSize: UInt32, _ b: UInt32, _ bSize: UInt32) -> Bool {
        UInt64(a) < UInt64(b) + UInt64(bSize) && UInt64(b) < UInt64(a) + UInt64(aSize)
    }
}
