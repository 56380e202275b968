import Glibc
import OCIImage

/// fd-anchored directory operations: listing and recursive removal that never follow a symlink.
enum Tree {
    /// The names in the directory `name` of `parent` (excluding `.` and `..`).
    static func children(of parent: Int32, _ name: some Collection<UInt8>) throws(SystemError) -> [[UInt8]] {
        let fd = name.withCString { openat(parent, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else {
            throw SystemError(call: "openat", errno: errno, path: String(decoding: name, as: UTF8.self))
        }
        return try children(ofOwned: fd)
    }

    /// Lists and closes `fd`.
    static func children(ofOwned fd: Int32) throws(SystemError) -> [[UInt8]] {
        guard let dir = fdopendir(fd) else {
            let e = errno
            close(fd)
            throw SystemError(call: "fdopendir", errno: e)
        }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw SystemError(call: "readdir", errno: errno) }
                return names
            }
            // d_name is read in place, up to its NUL: a dirent record is only as long as its name,
            // so copying the whole struct would read past it (AddressSanitizer found this).
            let offset = MemoryLayout<dirent>.offset(of: \dirent.d_name) ?? 19
            let namePointer = UnsafeRawPointer(entry).advanced(by: offset)
            let length = strlen(namePointer.assumingMemoryBound(to: CChar.self))
            let name = Array(UnsafeRawBufferPointer(start: namePointer, count: length))
            if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            names.append(name)
        }
    }

    /// Removes `name` in `parent`: a file or symlink (the link itself), or a directory with
    /// everything below it. A missing `name` is not an error.
    static func remove(in parent: Int32, _ name: some Collection<UInt8>) throws(SystemError) {
        var st = stat()
        let rc = name.withCString { fstatat(parent, $0, &st, AT_SYMLINK_NOFOLLOW) }
        if rc != 0 {
            if errno == ENOENT { return }
            throw SystemError(call: "fstatat", errno: errno, path: String(decoding: name, as: UTF8.self))
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let fd = name.withCString { openat(parent, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            guard fd >= 0 else {
                throw SystemError(call: "openat", errno: errno, path: String(decoding: name, as: UTF8.self))
            }
            let dir = OwnedFD(fd)
            let dupFD = fcntl(dir.rawValue, F_DUPFD_CLOEXEC, 0)
            guard dupFD >= 0 else { throw SystemError(call: "fcntl", errno: errno) }
            for child in try children(ofOwned: dupFD) {
                try remove(in: dir.rawValue, child)
            }
            if name.withCString({ unlinkat(parent, $0, AT_REMOVEDIR) }) != 0 && errno != ENOENT {
                throw SystemError(call: "rmdir", errno: errno, path: String(decoding: name, as: UTF8.self))
            }
        } else if name.withCString({ unlinkat(parent, $0, 0) }) != 0 && errno != ENOENT {
            throw SystemError(call: "unlink", errno: errno, path: String(decoding: name, as: UTF8.self))
        }
    }
}

/// Removes a host directory tree given by path (the staging directory), never following symlinks
/// inside it.
public func removeDirectoryTree(_ path: String) throws(SystemError) {
    let parentPath: String
    let name: String
    if let slash = path.lastIndex(of: "/") {
        parentPath = slash == path.startIndex ? "/" : String(path[..<slash])
        name = String(path[path.index(after: slash)...])
    } else {
        parentPath = "."
        name = path
    }
    let parent = try OwnedFD(
        retryingSyscall("open", path: parentPath) { open(parentPath, O_PATH_VALUE | O_DIRECTORY | O_CLOEXEC) })
    try Tree.remove(in: parent.rawValue, Array(name.utf8))
}
