import UnpackSystem

// Id maps as users give them: parsed from `CONTAINER:HOST:SIZE` and checked as the kernel checks a
// user namespace's map. (The type itself is the system layer's.)
extension IDMap.Range {
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

extension IDMap {
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
        self.init(unchecked: ranges)
    }

}
