internal import CShims
import Glibc

/// fd-anchored directory operations: listing and recursive removal that never follow a symlink and
/// never cross into another mount.
package enum Tree {
    /// The names in the directory `name` of `parent` (excluding `.` and `..`).
    package static func children(of parent: Int32, _ name: some Collection<UInt8>) throws(SystemError) -> [[UInt8]] {
        let fd = name.withCString { openat(parent, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else {
            throw SystemError(call: "openat", errno: errno, path: String(decoding: name, as: UTF8.self))
        }
        return try children(ofOwned: fd)
    }

    /// Lists and closes `fd`.
    package static func children(ofOwned fd: Int32) throws(SystemError) -> [[UInt8]] {
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

    /// Which mount a directory is on: the kernel's mount id where it reports one (a bind mount of
    /// the same filesystem has its own), else the device number.
    struct MountIdentity: Equatable {
        let device: UInt64
        let mountID: UInt64?

        /// Of `name` in `parent` (not following it), whose lstat is `status`.
        init(parent: Int32, _ name: some Collection<UInt8>, status: stat) {
            device = UInt64(status.st_dev)
            var id: UInt64 = 0
            mountID = name.withCString { CShims_mount_id(parent, $0, &id) } == 0 ? id : nil
        }

        static func == (a: MountIdentity, b: MountIdentity) -> Bool {
            guard a.device == b.device else { return false }
            guard let x = a.mountID, let y = b.mountID else { return true }
            return x == y
        }
    }

    /// Removes `name` in `parent`: a file or symlink (the link itself), or a directory with
    /// everything below it. A missing `name` is not an error.
    ///
    /// Never crosses into another filesystem or mount: a directory on another mount than the top
    /// one (a bind mount of host data inside an old bundle) stops the removal with EXDEV naming it,
    /// before anything of it is touched. Directories without owner read, write or search
    /// permission are made accessible (on the directory itself, through an fd opened without
    /// following anything) so that a non-root run can remove what a layer made read-only.
    package static func remove(in parent: Int32, _ name: some Collection<UInt8>) throws(SystemError) {
        try remove(in: parent, name, path: String(decoding: name, as: UTF8.self), mount: nil)
    }

    private static func remove(in parent: Int32, _ name: some Collection<UInt8>, path: String, mount: MountIdentity?)
        throws(SystemError)
    {
        var st = stat()
        let rc = name.withCString { fstatat(parent, $0, &st, AT_SYMLINK_NOFOLLOW) }
        if rc != 0 {
            if errno == ENOENT { return }
            throw SystemError(call: "fstatat", errno: errno, path: path)
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            if name.withCString({ unlinkat(parent, $0, 0) }) != 0 && errno != ENOENT {
                throw SystemError(call: "unlink", errno: errno, path: path)
            }
            return
        }
        let here = MountIdentity(parent: parent, name, status: st)
        if let mount, mount != here {
            throw SystemError(call: "remove (another mount is inside the tree)", errno: EXDEV, path: path)
        }
        if (st.st_mode & 0o700) != 0o700 {
            try makeAccessible(in: parent, name, mode: st.st_mode, path: path)
        }
        let fd = name.withCString { openat(parent, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemError(call: "openat", errno: errno, path: path) }
        let dir = OwnedFD(fd)
        let dupFD = fcntl(dir.rawValue, F_DUPFD_CLOEXEC, 0)
        guard dupFD >= 0 else { throw SystemError(call: "fcntl", errno: errno) }
        for child in try children(ofOwned: dupFD) {
            try remove(in: dir.rawValue, child, path: path + "/" + String(decoding: child, as: UTF8.self), mount: here)
        }
        if name.withCString({ unlinkat(parent, $0, AT_REMOVEDIR) }) != 0 && errno != ENOENT {
            throw SystemError(call: "rmdir", errno: errno, path: path)
        }
    }

    /// Adds owner rwx to the directory `name` of `parent`: opened with O_PATH | O_NOFOLLOW (which
    /// needs no permission on the directory itself), then changed through its /proc/self/fd link,
    /// which names exactly that directory.
    private static func makeAccessible(in parent: Int32, _ name: some Collection<UInt8>, mode: mode_t, path: String)
        throws(SystemError)
    {
        let fd = name.withCString { openat(parent, $0, O_PATH_VALUE | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemError(call: "openat", errno: errno, path: path) }
        let handle = OwnedFD(fd)
        if chmod("/proc/self/fd/\(handle.rawValue)", (mode & 0o7777) | 0o700) != 0 {
            throw SystemError(call: "chmod", errno: errno, path: path)
        }
    }
}

/// Removes a host directory tree given by path (a staging directory, an old bundle), never
/// following symlinks inside it and never crossing into another mount; the error names the path
/// where removal stopped.
package func removeDirectoryTree(_ path: String) throws(SystemError) {
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
    do throws(SystemError) {
        try Tree.remove(in: parent.rawValue, Array(name.utf8))
    } catch {
        // Name the full path: the tree's own relative path means little to a user.
        let full = error.path.map { parentPath == "." ? $0 : "\(parentPath)/\($0)" }
        throw SystemError(call: error.call, errno: error.errno, path: full)
    }
}

/// The mount points at or below `path` (a directory), from /proc/self/mountinfo, in the order the
/// kernel lists them. `path` must be canonical (realpath). `nil` when mountinfo cannot be read
/// (no /proc): then nobody can tell, and the caller must not assume there are none.
package func mountPoints(under path: String) -> [String]? {
    guard let fd = try? OwnedFD.openForReading("/proc/self/mountinfo"), let text = try? fd.readAll(limit: 64 << 20)
    else { return nil }
    var found: [String] = []
    // Compared as bytes: String comparison works on characters, and a name starting with a
    // combining mark would join the "/" before it.
    let pathBytes = Array(path.utf8)
    let prefix = path == "/" ? pathBytes : pathBytes + [UInt8(ascii: "/")]
    for line in text.split(separator: UInt8(ascii: "\n")) {
        // Fields: id parent major:minor root mount-point options …; the mount point escapes
        // space, tab, newline and backslash as \ooo.
        let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 5, omittingEmptySubsequences: false)
        guard fields.count > 4 else { continue }
        let point = unescapeMountField(fields[4])
        if point == pathBytes || point.starts(with: prefix) { found.append(String(decoding: point, as: UTF8.self)) }
    }
    return found
}

private func unescapeMountField(_ field: ArraySlice<UInt8>) -> [UInt8] {
    var out: [UInt8] = []
    var i = field.startIndex
    while i < field.endIndex {
        if field[i] == UInt8(ascii: "\\"), field.distance(from: i, to: field.endIndex) >= 4 {
            let digits = field[(i + 1)...(i + 3)]
            let value = digits.reduce(0) { ($0 << 3) | (Int($1) - 0x30) }
            if digits.allSatisfy({ (0x30...0x37).contains($0) }), value < 256 {
                out.append(UInt8(value))
                i += 4
                continue
            }
        }
        out.append(field[i])
        i += 1
    }
    return out
}
