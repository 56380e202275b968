import Foundation
import Glibc
import OCIImage
import UnpackSystem

/// A description of every path below a directory, for comparing trees in tests: type, mode,
/// owner, size, content digest or link target, and mtime, without following symlinks.
package struct TreeSnapshot: Equatable, CustomStringConvertible {
    package struct Node: Equatable, CustomStringConvertible {
        package var type: Character  // f d l c b p s
        package var mode: UInt32
        package var uid: UInt32
        package var gid: UInt32
        package var size: Int64
        /// Content digest (files) or link target (symlinks).
        package var content: String
        package var mtime: Int
        package var inode: UInt64
        package var links: UInt64
        package var rdev: UInt64
        /// The values of the xattrs the snapshot was asked to record, where set.
        package var xattrs: [String: [UInt8]] = [:]

        package var description: String {
            "\(type) \(String(mode, radix: 8)) \(uid):\(gid) size=\(size) \(content) mtime=\(mtime) nlink=\(links)"
                + xattrs.sorted { $0.key < $1.key }.map {
                    " \($0.key)=\($0.value.map { String($0, radix: 16) }.joined())"
                }
                .joined()
        }
    }

    package var nodes: [String: Node]

    private var xattrNames: [String] = []

    /// Walks `root` (which itself is recorded as "."), recording the xattrs named `xattrs`.
    package init(_ root: String, xattrs: [String] = []) throws {
        nodes = [:]
        xattrNames = xattrs
        try walk(root, relative: ".")
    }

    private mutating func walk(_ path: String, relative: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw SystemError(call: "lstat", errno: errno, path: path) }
        let kind: Character
        var content = ""
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            kind = "f"
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            content = Digest.of(Array(data)).short
        case S_IFDIR: kind = "d"
        case S_IFLNK:
            kind = "l"
            content = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?"
        case S_IFCHR: kind = "c"
        case S_IFBLK: kind = "b"
        case S_IFIFO: kind = "p"
        default: kind = "s"
        }
        nodes[relative] = Node(
            type: kind, mode: UInt32(st.st_mode & 0o7777), uid: st.st_uid, gid: st.st_gid,
            size: kind == "d" ? 0 : Int64(st.st_size), content: content, mtime: st.st_mtim.tv_sec,
            inode: UInt64(st.st_ino), links: kind == "d" ? 0 : UInt64(st.st_nlink), rdev: UInt64(st.st_rdev))
        for name in xattrNames {
            if let value = try CSys.lgetxattr(path, name) { nodes[relative]?.xattrs[name] = value }
        }
        if kind == "d" {
            for child in try FileManager.default.contentsOfDirectory(atPath: path).sorted() {
                try walk(path + "/" + child, relative: relative == "." ? child : relative + "/" + child)
            }
        }
    }

    package subscript(_ path: String) -> Node? { nodes[path] }

    /// Paths in sorted order.
    package var paths: [String] { nodes.keys.sorted() }

    /// One line per path that differs between two snapshots; directory mtimes and inode numbers
    /// are ignored unless asked for.
    package func differences(from other: TreeSnapshot, ignoreDirectoryTimes: Bool = true, ignoreInodes: Bool = true)
        -> [String]
    {
        var out: [String] = []
        for path in Set(nodes.keys).union(other.nodes.keys).sorted() {
            var a = nodes[path]
            var b = other.nodes[path]
            if ignoreInodes { a?.inode = 0; b?.inode = 0 }
            if ignoreDirectoryTimes {
                if a?.type == "d" { a?.mtime = 0 }
                if b?.type == "d" { b?.mtime = 0 }
            }
            if a != b {
                out.append("\(path): \(a?.description ?? "absent") != \(b?.description ?? "absent")")
            }
        }
        return out
    }

    package var description: String {
        paths.map { "\($0): \(nodes[$0].map(\.description) ?? "")" }.joined(separator: "\n")
    }
}
