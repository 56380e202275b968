import Glibc
import OCIImage
import UnpackSystem

/// Whose ids the files of the rootfs get.
public enum Ownership: Sendable, Equatable {
    /// The image's owners, as they are: what root does. Root in a user namespace restores the
    /// owners its namespace maps and warns about the others.
    case preserve
    /// Without privileges (umoci's `--rootless`): everything belongs to the user who unpacks, who
    /// stands for root in the container. Other owners are recorded in the
    /// `user.rootlesscontainers` xattr of files and directories, as umoci and other rootless tools
    /// record and read them; directories stay writable for the user while layers are applied and
    /// get their modes at the end.
    case rootless
    /// Root only: each owner is shifted to the host id its container id stands for under the maps
    /// (`--uid-map`, `--gid-map`), so that a runtime starting the bundle in a user namespace with
    /// the same maps sees the image's owners. `unmapped` says what happens to ids no range holds.
    case mapped(uids: IDMap, gids: IDMap, unmapped: UnmappedIDs)
    /// This process is root in a user namespace with these maps (inside ids to the host's, as its
    /// /proc/self/uid_map shows them; `--userns auto`): the image's owners are restored as root
    /// restores them, the kernel shifts them on disk, and config.json carries the maps.
    case namespaced(uids: IDMap, gids: IDMap)

    /// `.preserve` for root, `.rootless` for anybody else.
    public static var automatic: Ownership { geteuid() == 0 ? .preserve : .rootless }

    /// The host ids the bundle's user namespace maps (written into config.json), or nil when the
    /// bundle needs no user namespace.
    package var namespaceMaps: (uids: IDMap, gids: IDMap)? {
        switch self {
        case .preserve: nil
        case .rootless:
            (
                IDMap.single(containerID: 0, hostID: geteuid(), size: 1),
                IDMap.single(containerID: 0, hostID: getegid(), size: 1)
            )
        case .mapped(let uids, let gids, _), .namespaced(let uids, let gids): (uids, gids)
        }
    }

    /// Whether the bundle is meant for a runtime run by an ordinary user (the rootless template).
    package var isUnprivileged: Bool {
        switch self {
        case .rootless, .namespaced: true
        case .preserve, .mapped: false
        }
    }
}

/// What an id-mapped unpack does with an owner that no range of the maps holds.
public enum UnmappedIDs: String, Sendable, CaseIterable {
    /// The unpack fails, naming the entry and the id.
    case refuse
    /// The id becomes the kernel's overflow id (65534, `nobody`), as a user namespace shows
    /// unmapped ids.
    case overflow
}

/// The `user.rootlesscontainers` xattr: the protobuf message `Resource { uint32 uid = 1;
/// uint32 gid = 2; }` of github.com/rootless-containers/proto, where 4294967295 means "no change"
/// (the owner stays the unpacking user, root in the container).
package enum RootlessOwnerRecord {
    package static let name = "user.rootlesscontainers"
    /// `NoopID`.
    static let unchanged: UInt32 = .max

    /// The value for an entry owned by `uid`:`gid` in the image; nil for 0:0, which needs none.
    /// Both fields are written (root's as `NoopID`), in field order, as umoci writes them.
    package static func value(uid: UInt32, gid: UInt32) -> [UInt8]? {
        guard uid != 0 || gid != 0 else { return nil }
        var bytes: [UInt8] = [0x08]
        varint(uid == 0 ? unchanged : uid, into: &bytes)
        bytes.append(0x10)
        varint(gid == 0 ? unchanged : gid, into: &bytes)
        return bytes
    }

    /// Reads a value back: the owner it records (`NoopID` fields as 0); nil for a malformed one.
    package static func owner(from value: [UInt8]) -> (uid: UInt32, gid: UInt32)? {
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        var index = 0
        while index < value.count {
            let key = value[index]
            index += 1
            guard key == 0x08 || key == 0x10, let (number, next) = readVarint(value, at: index) else { return nil }
            index = next
            let id = number == UInt64(unchanged) ? 0 : UInt32(truncatingIfNeeded: number)
            if key == 0x08 { uid = id } else { gid = id }
        }
        return (uid, gid)
    }

    private static func varint(_ value: UInt32, into bytes: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private static func readVarint(_ bytes: [UInt8], at start: Int) -> (UInt64, Int)? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var index = start
        while index < bytes.count, shift < 64 {
            let byte = bytes[index]
            index += 1
            value |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return (value, index) }
            shift += 7
        }
        return nil
    }
}

/// `security.capability` values (`struct vfs_cap_data` and `vfs_ns_cap_data` of
/// linux/capability.h): little-endian `magic_etc`, then permitted/inheritable pairs, and in
/// revision 3 the host uid of the user namespace root the capabilities belong to.
package enum FileCapability {
    package static let name = "security.capability"
    static let revisionMask: UInt32 = 0xFF00_0000
    static let revision1: UInt32 = 0x0100_0000
    static let revision2: UInt32 = 0x0200_0000
    static let revision3: UInt32 = 0x0300_0000

    /// The value as revision 3, owned by the namespace whose root is host uid `rootID`, for a
    /// file in an id-mapped rootfs: the kernel honours it only in such a namespace, as it does
    /// for capabilities set from inside one. A revision 3 value already names a container root
    /// id, which `map` translates. Nil for a value that is not a capability set.
    package static func namespaced(_ value: [UInt8], map: (UInt32) -> UInt32?) -> [UInt8]? {
        guard value.count >= 4 else { return nil }
        let magic = le32(value, 0)
        let containerRoot: UInt32
        let sets: [UInt8]
        switch (magic & revisionMask, value.count) {
        case (revision1, 12):
            sets = Array(value[4..<12]) + [UInt8](repeating: 0, count: 8)
            containerRoot = 0
        case (revision2, 20):
            sets = Array(value[4..<20])
            containerRoot = 0
        case (revision3, 24):
            sets = Array(value[4..<20])
            containerRoot = le32(value, 20)
        default:
            return nil
        }
        guard let rootID = map(containerRoot) else { return nil }
        return bytes((magic & ~revisionMask) | revision3) + sets + bytes(rootID)
    }

    static func le32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
            | UInt32(bytes[offset + 3]) << 24
    }

    static func bytes(_ value: UInt32) -> [UInt8] {
        [UInt8(value & 0xff), UInt8(value >> 8 & 0xff), UInt8(value >> 16 & 0xff), UInt8(value >> 24)]
    }
}
