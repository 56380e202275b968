import Crypto
import Glibc
import OCIImage
import UnpackSystem

extension TreeListing {
    /// The listing of the tree under `directory` on disk (an unpacked rootfs), read without
    /// following a symlink below it: comparable with an image's listing. Sockets are left out, as
    /// an unpack leaves them out.
    public init(directory: String) throws(UnpackError) {
        let rootFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else {
            throw SystemError(call: "open", errno: errno, path: directory).unpackError(
                "cannot open the directory \(DisplayText.escaping(directory)) to list")
        }
        let root = OwnedFD(rootFD)
        var walker = DirectoryWalker()
        do throws(SystemError) {
            try walker.visitRoot(root)
        } catch {
            throw error.unpackError("listing \(DisplayText.escaping(directory)) failed")
        }
        self.init(entries: walker.entries, inodeKeys: walker.keys)
    }
}

/// The depth-first walk behind `TreeListing(directory:)`.
private struct DirectoryWalker {
    var entries: [TreeListing.Entry] = []
    var keys: [Int?] = []
    private var inodes: [InodeKey: Int] = [:]

    private struct InodeKey: Hashable {
        let device: UInt64
        let inode: UInt64
    }

    mutating func visitRoot(_ root: OwnedFD) throws(SystemError) {
        let st = try root.status()
        append(st, components: [], xattrs: try xattrs("/proc/self/fd/\(root.rawValue)"), content: [], target: [])
        try visitChildren(of: root, components: [])
    }

    private mutating func visitChildren(of directory: OwnedFD, components: [[UInt8]]) throws(SystemError) {
        let names = try Tree.children(of: directory.rawValue, Array(".".utf8)).sorted {
            $0.lexicographicallyPrecedes($1)
        }
        for name in names {
            var st = stat()
            guard name.withCString({ fstatat(directory.rawValue, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0 else {
                throw SystemError(call: "fstatat", errno: errno, path: TreeListing.encodePath(components + [name]))
            }
            let type = st.st_mode & S_IFMT
            if type == S_IFSOCK { continue }
            let path = components + [name]
            let display = TreeListing.encodePath(path)
            let procPath = "/proc/self/fd/\(directory.rawValue)/" + String(decoding: name, as: UTF8.self)
            // Names that are not UTF-8 cannot pass through a String path: read their xattrs on an
            // O_PATH fd's /proc link instead.
            let attributes: [TreeListing.Xattr]
            if String(validating: name, as: UTF8.self) != nil, !name.contains(0) {
                attributes = try xattrs(procPath)
            } else {
                let opened = try directory.openChild(bytes: name, flags: O_PATH_VALUE, display: display)
                attributes = type == S_IFLNK ? [] : try xattrs("/proc/self/fd/\(opened.rawValue)")
            }
            switch type {
            case S_IFREG:
                let content = try hash(
                    directory.openChild(bytes: name, flags: O_RDONLY, display: display), path: display)
                append(st, components: path, xattrs: attributes, content: content, target: [])
            case S_IFLNK:
                var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = name.withCString { readlinkat(directory.rawValue, $0, &buffer, buffer.count) }
                guard n >= 0 else { throw SystemError(call: "readlinkat", errno: errno, path: display) }
                let target = buffer[0..<n].map { UInt8(bitPattern: $0) }
                append(st, components: path, xattrs: attributes, content: [], target: target)
            case S_IFDIR:
                append(st, components: path, xattrs: attributes, content: [], target: [])
                try visitChildren(
                    of: directory.openChild(bytes: name, flags: O_RDONLY | O_DIRECTORY, display: display),
                    components: path)
            default:
                append(st, components: path, xattrs: attributes, content: [], target: [])
            }
        }
    }

    private mutating func append(
        _ st: stat, components: [[UInt8]], xattrs: [TreeListing.Xattr], content: [UInt8], target: [UInt8]
    ) {
        let kind: TreeListing.Entry.Kind
        switch st.st_mode & S_IFMT {
        case S_IFDIR: kind = .directory
        case S_IFREG: kind = .regular
        case S_IFLNK: kind = .symlink
        case S_IFCHR: kind = .characterDevice
        case S_IFBLK: kind = .blockDevice
        default: kind = .fifo
        }
        let device = UInt64(st.st_rdev)
        // glibc's gnu_dev_major and gnu_dev_minor.
        let major = UInt32(truncatingIfNeeded: ((device >> 8) & 0xfff) | ((device >> 32) & ~UInt64(0xfff)))
        let minor = UInt32(truncatingIfNeeded: (device & 0xff) | ((device >> 12) & ~UInt64(0xff)))
        let isDevice = kind == .characterDevice || kind == .blockDevice
        entries.append(
            TreeListing.Entry(
                components: components, kind: kind, mode: kind == .symlink ? 0o777 : UInt32(st.st_mode & 0o7777),
                uid: Int64(st.st_uid), gid: Int64(st.st_gid), size: kind == .regular ? Int64(st.st_size) : 0,
                content: content, linkTarget: target, deviceMajor: isDevice ? major : 0,
                deviceMinor: isDevice ? minor : 0, xattrs: xattrs, hardlinkGroup: nil,
                mtime: components.isEmpty ? nil : st.st_mtim))
        if kind != .directory && st.st_nlink > 1 {
            let key = InodeKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
            if let known = inodes[key] {
                keys.append(known)
            } else {
                inodes[key] = inodes.count
                keys.append(inodes.count - 1)
            }
        } else {
            keys.append(nil)
        }
    }

    private func hash(_ file: OwnedFD, path: String) throws(SystemError) -> [UInt8] {
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(file.rawValue, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "read", errno: errno, path: path)
            }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[..<n])) }
        }
        return Array(hasher.finalize())
    }

    /// The xattrs of the file `path` names (not following a last symlink), sorted by name.
    private func xattrs(_ path: String) throws(SystemError) -> [TreeListing.Xattr] {
        var out: [TreeListing.Xattr] = []
        for name in try CSys.llistxattr(path) {
            if let value = try CSys.lgetxattr(path, name) { out.append(TreeListing.Xattr(name: name, value: value)) }
        }
        return out.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
    }
}
