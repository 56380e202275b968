import Glibc
import LayerStream
import OCIImage

/// The canonical listing of a root filesystem: one line per path, in a fixed order, with what a
/// container would see of it (type, mode, owner, size, content digest, link target, device
/// numbers, xattrs, hardlink group, mtime). Two trees are the same when their listings are; the
/// tree digest is the SHA-256 of the listing's text (docs/verify-variants.md gives the format).
///
/// Built from an image's layers without writing a file (``VirtualTree``) or from a directory on
/// disk (`init(directory:)`), so that an image can be compared with an unpacked rootfs.
public struct TreeListing: Sendable {
    /// One path of the tree.
    public struct Entry: Sendable, Equatable {
        /// The kinds of file a listing names.
        public enum Kind: String, Sendable {
            case directory = "dir"
            case regular = "file"
            case symlink
            case characterDevice = "char"
            case blockDevice = "block"
            case fifo
        }

        /// The path's components below the root (empty for the root), raw bytes.
        public var components: [[UInt8]]
        /// The kind of file.
        public var kind: Kind
        /// Permission bits with setuid, setgid and sticky; 0777 for a symlink.
        public var mode: UInt32
        /// The owner's user id.
        public var uid: Int64
        /// The owner's group id.
        public var gid: Int64
        /// A regular file's size in bytes; 0 otherwise.
        public var size: Int64
        /// A regular file's SHA-256 (holes read as zeros); empty otherwise.
        public var content: [UInt8]
        /// A symlink's target.
        public var linkTarget: [UInt8]
        /// A device's major number; 0 otherwise.
        public var deviceMajor: UInt32
        /// A device's minor number; 0 otherwise.
        public var deviceMinor: UInt32
        /// Extended attributes, sorted by name.
        public var xattrs: [Xattr]
        /// The first path (in listing order) of the hardlink group this entry belongs to; nil when
        /// no other path shares its inode.
        public var hardlinkGroup: String?
        /// Modification time; nil for the root (its time is the unpack's) and for directories that
        /// no tar entry described (created at unpack time). An unknown time matches any time in
        /// ``differences(from:ignoringMtime:)``, but the listing's text, and so its digest, shows
        /// it only when known.
        public var mtime: timespec?

        /// The path as the listing writes it: `/` then the components, bytes outside printable
        /// ASCII and `%` as `%XX`.
        public var path: String { TreeListing.encodePath(components) }

        /// Entries are equal when their paths and every listed field are.
        public static func == (a: Entry, b: Entry) -> Bool {
            a.components == b.components && a.sameContent(as: b, ignoringMtime: false)
        }

        /// Whether everything but the path agrees.
        func sameContent(as other: Entry, ignoringMtime: Bool) -> Bool {
            differences(from: other, ignoringMtime: ignoringMtime).isEmpty
        }

        /// The fields that differ, as `name: this → other`.
        public func differences(from other: Entry, ignoringMtime: Bool) -> [String] {
            var out: [String] = []
            // Values are compared raw and formatted only when they differ: this runs for every
            // entry of every comparison.
            func note<T: Equatable>(_ name: String, _ a: T, _ b: T, _ format: (T) -> String) {
                if a != b { out.append("\(name): \(format(a)) → \(format(b))") }
            }
            note("type", kind, other.kind) { $0.rawValue }
            note("mode", mode, other.mode) { String($0, radix: 8) }
            note("uid", uid, other.uid) { String($0) }
            note("gid", gid, other.gid) { String($0) }
            if kind == .regular || other.kind == .regular {
                note("size", size, other.size) { String($0) }
                note("content", content, other.content) { TreeListing.hex($0) }
            }
            note("target", linkTarget, other.linkTarget) { TreeListing.encode($0) }
            note("device", [deviceMajor, deviceMinor], [other.deviceMajor, other.deviceMinor]) {
                "\($0[0]):\($0[1])"
            }
            note("xattrs", xattrs, other.xattrs) { $0.map(\.field).joined(separator: " ") }
            note("hardlink group", hardlinkGroup, other.hardlinkGroup) { $0 ?? "none" }
            // An unknown time (the root's, a directory no entry described) differs from none.
            if !ignoringMtime, let mtime, let theirs = other.mtime {
                note("mtime", [Int(mtime.tv_sec), Int(mtime.tv_nsec)], [Int(theirs.tv_sec), Int(theirs.tv_nsec)]) {
                    TreeListing.time(timespec(tv_sec: $0[0], tv_nsec: $0[1]))
                }
            }
            return out
        }

        /// The listing line, without its newline.
        func line(ignoringMtime: Bool) -> String {
            var fields = [path, kind.rawValue, "mode=" + String(mode, radix: 8), "uid=\(uid)", "gid=\(gid)"]
            switch kind {
            case .regular:
                fields.append("size=\(size)")
                fields.append("sha256=" + TreeListing.hex(content))
            case .symlink:
                fields.append("target=" + TreeListing.encode(linkTarget))
            case .characterDevice, .blockDevice:
                fields.append("device=\(deviceMajor):\(deviceMinor)")
            case .directory, .fifo:
                break
            }
            fields += xattrs.map(\.field)
            if let group = hardlinkGroup { fields.append("link=" + group) }
            if !ignoringMtime, let mtime { fields.append("mtime=" + TreeListing.time(mtime)) }
            return fields.joined(separator: " ")
        }
    }

    /// One extended attribute.
    public struct Xattr: Sendable, Equatable {
        /// The attribute's name, such as `security.capability`.
        public var name: String
        /// The attribute's value, raw bytes.
        public var value: [UInt8]

        var field: String { "xattr." + TreeListing.encode(Array(name.utf8)) + "=" + TreeListing.hex(value) }
    }

    /// The listing's first line; a new format gets a new version.
    public static let formatHeader = "oci-unpack tree listing v1"

    /// Every path, root first, then each directory's children in byte order of their names, each
    /// followed by its own children.
    public var entries: [Entry]

    /// A listing of the given entries, which must be in listing order.
    public init(entries: [Entry]) {
        self.entries = entries
        Self.assignHardlinkGroups(&self.entries, keys: nil)
    }

    init(entries: [Entry], inodeKeys: [Int?]) {
        self.entries = entries
        Self.assignHardlinkGroups(&self.entries, keys: inodeKeys)
    }

    /// The listing's text: the header (with `ignore-mtime` when mtimes are left out), then one
    /// line per entry, each ending in a newline.
    public func text(ignoringMtime: Bool = false) -> String {
        var out = header(ignoringMtime: ignoringMtime) + "\n"
        for entry in entries { out += entry.line(ignoringMtime: ignoringMtime) + "\n" }
        return out
    }

    /// SHA-256 of ``text(ignoringMtime:)``, computed without building the text.
    public func digest(ignoringMtime: Bool = false) -> Digest {
        var digester = Digester(.sha256)
        digester.update(Array((header(ignoringMtime: ignoringMtime) + "\n").utf8))
        for entry in entries { digester.update(Array((entry.line(ignoringMtime: ignoringMtime) + "\n").utf8)) }
        return digester.finalize()
    }

    private func header(ignoringMtime: Bool) -> String {
        ignoringMtime ? Self.formatHeader + " ignore-mtime" : Self.formatHeader
    }

    /// One path at which two listings differ.
    public struct Difference: Sendable, Equatable, Encodable {
        /// The path, as the listing writes it.
        public var path: String
        /// `only-in-reference`, `only-in-variant` or `changed`.
        public var kind: String
        /// For `changed`: each differing field as `name: reference → variant`.
        public var fields: [String]
    }

    /// The paths at which `other` differs from this listing, in listing order, at most `limit`,
    /// and how many there are in all.
    public func differences(to other: TreeListing, ignoringMtime: Bool, limit: Int) -> (
        first: [Difference], count: Int
    ) {
        var found: [Difference] = []
        var count = 0
        func add(_ difference: Difference) {
            count += 1
            if found.count < limit { found.append(difference) }
        }
        // Both are in listing order: merge.
        var i = 0
        var j = 0
        while i < entries.count || j < other.entries.count {
            let order: Int
            if i == entries.count {
                order = 1
            } else if j == other.entries.count {
                order = -1
            } else {
                order = Self.compare(entries[i].components, other.entries[j].components)
            }
            if order < 0 {
                add(Difference(path: entries[i].path, kind: "only-in-reference", fields: []))
                i += 1
            } else if order > 0 {
                add(Difference(path: other.entries[j].path, kind: "only-in-variant", fields: []))
                j += 1
            } else {
                let fields = entries[i].differences(from: other.entries[j], ignoringMtime: ignoringMtime)
                if !fields.isEmpty { add(Difference(path: entries[i].path, kind: "changed", fields: fields)) }
                i += 1
                j += 1
            }
        }
        return (found, count)
    }

    // MARK: - Order and text

    /// Listing order: component by component, each compared by its bytes; a parent before its
    /// children.
    static func compare(_ a: [[UInt8]], _ b: [[UInt8]]) -> Int {
        for (x, y) in zip(a, b) where x != y {
            return x.lexicographicallyPrecedes(y) ? -1 : 1
        }
        return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
    }

    static func encodePath(_ components: [[UInt8]]) -> String {
        "/" + components.map { encode($0) }.joined(separator: "/")
    }

    /// Bytes outside printable ASCII, space, `%` and `=` as `%XX`; everything else as itself.
    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for byte in bytes {
            if byte <= 0x20 || byte >= 0x7f || byte == UInt8(ascii: "%") || byte == UInt8(ascii: "=") {
                out.append(UInt8(ascii: "%"))
                out.append(upperDigits[Int(byte >> 4)])
                out.append(upperDigits[Int(byte & 0xf)])
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lowercase hex (content digests are formatted for every entry of every listing).
    static func hex(_ bytes: [UInt8]) -> String {
        var out = [UInt8](repeating: 0, count: bytes.count * 2)
        for (i, byte) in bytes.enumerated() {
            out[2 * i] = lowerDigits[Int(byte >> 4)]
            out[2 * i + 1] = lowerDigits[Int(byte & 0xf)]
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let lowerDigits = Array("0123456789abcdef".utf8)
    private static let upperDigits = Array("0123456789ABCDEF".utf8)

    static func time(_ t: timespec) -> String {
        let nanos = String(t.tv_nsec)
        return "\(t.tv_sec)." + String(repeating: "0", count: max(0, 9 - nanos.count)) + nanos
    }

    /// Marks the entries that share an inode with the first path of their group. `keys` gives each
    /// entry's inode identity (nil: a directory or a file with one link); without keys the groups
    /// already set are kept.
    private static func assignHardlinkGroups(_ entries: inout [Entry], keys: [Int?]?) {
        guard let keys else { return }
        var counts: [Int: Int] = [:]
        for case let key? in keys { counts[key, default: 0] += 1 }
        var first: [Int: String] = [:]
        for i in entries.indices {
            guard let key = keys[i], let n = counts[key], n > 1 else {
                entries[i].hardlinkGroup = nil
                continue
            }
            if let path = first[key] {
                entries[i].hardlinkGroup = path
            } else {
                let path = entries[i].path
                first[key] = path
                entries[i].hardlinkGroup = path
            }
        }
    }
}

extension TreeListing {
    /// The listing of a virtual tree.
    package init(_ tree: VirtualTree) {
        var entries: [Entry] = []
        var keys: [Int?] = []
        func visit(_ node: VirtualTree.Node, _ components: [[UInt8]]) {
            let kind: Entry.Kind
            switch node.kind {
            case .directory: kind = .directory
            case .regular: kind = .regular
            case .symlink: kind = .symlink
            case .characterDevice: kind = .characterDevice
            case .blockDevice: kind = .blockDevice
            case .fifo, .hardlink, .socket: kind = .fifo
            }
            entries.append(
                Entry(
                    components: components, kind: kind, mode: node.mode, uid: node.uid, gid: node.gid,
                    size: kind == .regular ? node.size : 0, content: kind == .regular ? node.content : [],
                    linkTarget: kind == .symlink ? node.linkTarget : [],
                    deviceMajor: node.deviceMajor, deviceMinor: node.deviceMinor,
                    xattrs: node.xattrs.map { Xattr(name: $0.key, value: $0.value) }.sorted {
                        $0.name.utf8.lexicographicallyPrecedes($1.name.utf8)
                    },
                    hardlinkGroup: nil, mtime: components.isEmpty ? nil : node.mtime))
            keys.append(kind == .directory ? nil : node.serial)
            guard kind == .directory else { return }
            for name in node.children.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                if let child = node.children[name] { visit(child, components + [name]) }
            }
        }
        visit(tree.root, [])
        self.init(entries: entries, inodeKeys: keys)
    }
}
