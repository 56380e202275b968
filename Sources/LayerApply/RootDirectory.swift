import Glibc
import LayerEngine
import OCIImage
import UnpackSystem

/// The root filesystem being built, held as a directory fd. Every path is resolved from this fd
/// with symlinks interpreted inside it (as if it were `/`): openat2 with RESOLVE_IN_ROOT, or an
/// equivalent component-by-component walk where openat2 is missing.
package final class RootDirectory {
    package let fd: OwnedFD
    package let path: String
    /// Whether to use openat2 (false forces the userspace resolver; tests use it to cover both).
    package private(set) var useOpenat2: Bool
    /// Symlinks followed in one resolution before ELOOP (the kernel's limit is 40 too).
    package let maxSymlinks = 40
    /// Whether the umask may take bits from a new 0755 directory (or is unknown).
    private let umaskMasksDirectories: Bool
    /// The owner of directories the image does not list, when it is not this process (id-mapped
    /// unpacks: the host ids of the container's root).
    package var implicitOwner: (uid: uid_t, gid: gid_t)?

    /// `umask`: the process's (`nil`: unknown, so new directories always get their mode set).
    package init(path: String, forceUserspaceResolver: Bool = false, umask: mode_t? = Applier.readUmask())
        throws(UnpackError)
    {
        self.path = path
        umaskMasksDirectories = umask.map { $0 & 0o755 != 0 } ?? true
        do throws(SystemError) {
            fd = try OwnedFD(retryingSyscall("open", path: path) { open(path, O_PATH_VALUE | O_DIRECTORY | O_CLOEXEC) })
        } catch {
            throw error.unpackError("cannot open root filesystem \(path)", context: .init(path: path))
        }
        useOpenat2 = !forceUserspaceResolver
        if useOpenat2 {
            let probe = CSys.openat2(
                fd.rawValue, ".", flags: O_PATH_VALUE | O_DIRECTORY | O_CLOEXEC, resolve: CSys.resolveInRoot)
            if probe >= 0 {
                close(probe)
            } else if errno == ENOSYS || errno == EPERM {
                // No openat2 (kernel < 5.6, or a seccomp filter that refuses it).
                useOpenat2 = false
            }
        }
    }

    /// Bytes of symlink targets the userspace resolver may still follow in this layer (see
    /// `resetSymlinkBudget`); crafted parents (40 symlinks of ~4 KB of `./` each) would otherwise
    /// cost milliseconds per entry, hours for a layer of millions of entries.
    private var symlinkBudget: Int = .max
    /// The existing directories a resolution made a missing directory in, with their status
    /// (times) before it: a layer that gave them a new child restores their times when it ends,
    /// as it does for an entry's parent. Taken by ``takeExtendedDirectories()``.
    private var extended: [(EntryPath, stat)] = []

    /// The directories resolutions extended since the last call (see `extended`).
    package func takeExtendedDirectories() -> [(EntryPath, stat)] {
        defer { extended.removeAll() }
        return extended
    }
    /// The `call` of the error that reports an exhausted budget.
    package static let budgetExhausted = "resolve (limit symlink-bytes-per-layer)"

    /// Starts a layer with `limit` bytes of symlink targets to follow.
    package func resetSymlinkBudget(_ limit: Int) {
        symlinkBudget = limit
    }

    /// Opens the directory at `path` (O_PATH), creating missing components as 0755 directories
    /// when `create` is set. Symlinks on the way are followed inside the root.
    package func openDirectory(_ path: EntryPath, create: Bool) throws(SystemError) -> OwnedFD {
        try resolveDirectory(path, create: create).fd
    }

    /// `openDirectory`, also returning the directory's canonical path: where `path` leads once
    /// every symlink on the way is followed (no symlink in it). Whiteouts and saved directory times
    /// are keyed by it, so that `l/f` and `real/f` with `l -> real` are the same entry.
    ///
    /// A path without symlinks is opened by the kernel in one call (openat2 with
    /// RESOLVE_NO_SYMLINKS, so its canonical path is itself); one through a symlink, or with a
    /// missing directory to create, is walked in userspace, where the symlink budget is counted.
    package func resolveDirectory(_ path: EntryPath, create: Bool) throws(SystemError) -> (
        fd: OwnedFD, canonical: EntryPath
    ) {
        if path.isRoot {
            return (try duplicateRoot(), .root)
        }
        if useOpenat2 {
            switch openat2Directory(path.key) {
            case .success(let opened): return (opened, path)
            case .failure(let error):
                // ELOOP: a symlink on the way; ENOENT: something to create (perhaps behind a
                // dangling symlink), or a symlink to a missing directory: the walk decides.
                guard error.errno == ELOOP || (error.errno == ENOENT && create) else { throw error }
            }
        }
        return try walk(path, create: create)
    }

    /// `openDirectory` without creating; `nil` when the directory (or a parent) does not exist or
    /// is not a directory.
    package func openExistingDirectory(_ path: EntryPath) throws(SystemError) -> OwnedFD? {
        try resolveExistingDirectory(path)?.fd
    }

    /// `resolveDirectory` without creating; `nil` when it does not exist or is not a directory.
    package func resolveExistingDirectory(_ path: EntryPath) throws(SystemError) -> (
        fd: OwnedFD, canonical: EntryPath
    )? {
        do {
            return try resolveDirectory(path, create: false)
        } catch {
            if error.errno == ENOENT || error.errno == ENOTDIR { return nil }
            throw error
        }
    }

    /// `resolveDirectory` creating what is missing; `nil` when a non-directory stands on the way.
    package func resolveOrCreateDirectory(_ path: EntryPath) throws(SystemError) -> (
        fd: OwnedFD, canonical: EntryPath
    )? {
        do {
            return try resolveDirectory(path, create: true)
        } catch {
            if error.errno == ENOTDIR { return nil }
            throw error
        }
    }

    /// The directory at a canonical `path` (one without symlinks), never following one: `nil`
    /// when it is gone or a symlink now stands on the way (a later entry replaced it).
    package func openCanonicalDirectory(_ path: EntryPath) throws(SystemError) -> OwnedFD? {
        if path.isRoot { return try duplicateRoot() }
        if useOpenat2 {
            switch openat2Directory(path.key) {
            case .success(let opened): return opened
            case .failure(let error):
                if error.errno == ENOENT || error.errno == ENOTDIR || error.errno == ELOOP { return nil }
                throw error
            }
        }
        var current = try duplicateRoot()
        for component in path.components {
            do throws(SystemError) {
                current = try current.openChild(
                    bytes: component, flags: O_PATH_VALUE | O_DIRECTORY, display: path.description)
            } catch {
                if error.errno == ENOENT || error.errno == ENOTDIR || error.errno == ELOOP { return nil }
                throw error
            }
        }
        return current
    }

    /// Reads a regular file of the root filesystem, resolving every symlink (the last one too)
    /// inside the root, so `/etc/passwd -> /etc/shadow` or `-> ../../host` stays in the rootfs.
    /// `nil` when it does not exist; an error when it is not a regular file or exceeds `limit`.
    package func readFile(_ path: EntryPath, limit: Int) throws(UnpackError) -> [UInt8]? {
        let context = UnpackError.Context(path: path.description)
        var current = path
        var followed = 0
        while true {
            guard let parent = try openExistingDirectoryAsUnpackError(current.parent, context) else { return nil }
            // O_PATH | O_NOFOLLOW runs no device driver, does not block on a FIFO and gives the
            // symlink itself, which is then resolved here, inside the root, never by the kernel
            // against the host's root. Only a regular file is reopened for reading.
            let found: stat
            do throws(SystemError) {
                found = try parent.openChild(bytes: current.name, flags: O_PATH_VALUE, display: path.description)
                    .status()
            } catch {
                if error.errno == ENOENT { return nil }
                throw error.unpackError("cannot read \(path) in the root filesystem", context: context)
            }
            if (found.st_mode & S_IFMT) == S_IFLNK {
                followed += 1
                guard followed <= maxSymlinks else {
                    throw UnpackError(.unsafePath, "\(path) in the root filesystem is a symlink loop", context: context)
                }
                let target: [UInt8]
                do {
                    target = try readLink(parent, current.name)
                } catch {
                    throw error.unpackError("cannot read the symlink \(current)", context: context)
                }
                let base = target.first == UInt8(ascii: "/") ? EntryPath.root : current.parent
                current = EntryPath(cleaning: base.key + [UInt8(ascii: "/")] + target)
                continue
            }
            guard (found.st_mode & S_IFMT) == S_IFREG else {
                throw UnpackError(.unsafePath, "\(path) in the root filesystem is not a regular file", context: context)
            }
            let file: OwnedFD
            do throws(SystemError) {
                file = try parent.openChild(
                    bytes: current.name, flags: O_RDONLY | O_NONBLOCK | O_NOCTTY, display: path.description)
            } catch {
                throw error.unpackError("cannot read \(path) in the root filesystem", context: context)
            }
            let st: stat
            do {
                st = try file.status()
            } catch {
                throw error.unpackError("cannot read \(path) in the root filesystem", context: context)
            }
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                throw UnpackError(.unsafePath, "\(path) in the root filesystem is not a regular file", context: context)
            }
            guard st.st_size <= limit else {
                throw UnpackError(
                    .limitExceeded,
                    "\(path) in the root filesystem is \(st.st_size) bytes, over the \(limit)-byte limit",
                    context: context)
            }
            let read = try SystemError.mapping({ () throws(SystemError) in try file.readAll(limit: limit) }) {
                $0.unpackError("cannot read \(path) in the root filesystem", context: context)
            }
            guard let bytes = read else {
                throw UnpackError(
                    .limitExceeded, "\(path) in the root filesystem is over the \(limit)-byte limit", context: context)
            }
            return bytes
        }
    }

    private func openExistingDirectoryAsUnpackError(_ path: EntryPath, _ context: UnpackError.Context)
        throws(UnpackError)
        -> OwnedFD?
    {
        do {
            return try openExistingDirectory(path)
        } catch {
            throw error.unpackError("cannot open \(path) in the root filesystem", context: context)
        }
    }

    /// A new fd for the root directory itself (callers own and close what they open).
    private func duplicateRoot() throws(SystemError) -> OwnedFD {
        try OwnedFD(retryingSyscall("dup") { fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0) })
    }

    /// openat2 with RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS: the kernel opens a path without
    /// symlinks in one call, and fails with ELOOP on the first symlink.
    private func openat2Directory(_ key: [UInt8]) -> Result<OwnedFD, SystemError> {
        // EAGAIN: a rename elsewhere on the system raced the lookup; retry, then report it.
        var error = SystemError(call: "openat2", errno: EAGAIN, path: String(decoding: key, as: UTF8.self))
        for _ in 0..<8 {
            let fd = key.withCString { path in
                CSys.openat2(
                    self.fd.rawValue, path, flags: O_PATH_VALUE | O_DIRECTORY | O_CLOEXEC,
                    resolve: CSys.resolveInRoot | CSys.resolveNoMagicLinks | CSys.resolveNoSymlinks)
            }
            if fd >= 0 { return .success(OwnedFD(fd)) }
            error = SystemError(call: "openat2", errno: errno, path: String(decoding: key, as: UTF8.self))
            if error.errno != EAGAIN && error.errno != EINTR { return .failure(error) }
        }
        return .failure(error)
    }

    /// A directory the image does not list (a parent of an entry) gets 0755, whatever the umask:
    /// under umask 077 `usr` and `usr/local` would otherwise be 0700, closed to the image's users.
    private func makeDirectory(_ parent: OwnedFD, _ name: ArraySlice<UInt8>) throws(SystemError) {
        let rc = name.withCString { mkdirat(parent.rawValue, $0, 0o755) }
        if rc != 0 {
            if errno == EEXIST { return }
            throw SystemError(call: "mkdirat", errno: errno, path: String(decoding: name, as: UTF8.self))
        }
        if umaskMasksDirectories && name.withCString({ fchmodat(parent.rawValue, $0, 0o755, 0) }) != 0 {
            throw SystemError(call: "fchmodat", errno: errno, path: String(decoding: name, as: UTF8.self))
        }
        if let owner = implicitOwner,
            name.withCString({ fchownat(parent.rawValue, $0, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) }) != 0
        {
            throw SystemError(call: "fchownat", errno: errno, path: String(decoding: name, as: UTF8.self))
        }
    }

    /// The userspace in-root resolver: one component at a time with O_NOFOLLOW; a symlink is read
    /// and its target resolved from the root (absolute) or the current directory (relative), `..`
    /// never climbing above the root. Returns the directory and its canonical path.
    private func walk(_ path: EntryPath, create: Bool) throws(SystemError) -> (fd: OwnedFD, canonical: EntryPath) {
        var stack: [OwnedFD] = [try duplicateRoot()]
        var names: [ArraySlice<UInt8>] = []
        var pending: [ArraySlice<UInt8>] = path.components.reversed()
        var followed = 0
        while let component = pending.popLast() {
            if component.elementsEqual([UInt8(ascii: ".")]) || component.isEmpty { continue }
            if component.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                if stack.count > 1 {
                    stack.removeLast()
                    names.removeLast()
                }
                continue
            }
            let current = stack[stack.count - 1]
            let display = String(decoding: component, as: UTF8.self)
            let opened: OwnedFD
            do throws(SystemError) {
                opened = try current.openChild(bytes: component, flags: O_PATH_VALUE, display: display)
            } catch {
                guard error.errno == ENOENT && create else { throw error }
                if let before = try? current.status() {
                    extended.append((names.isEmpty ? .root : EntryPath(components: names.map { Array($0) }), before))
                }
                try makeDirectory(current, component)
                opened = try current.openChild(bytes: component, flags: O_PATH_VALUE, display: display)
            }
            let st = try opened.status()
            if (st.st_mode & S_IFMT) == S_IFLNK {
                followed += 1
                guard followed <= maxSymlinks else { throw SystemError(call: "resolve", errno: ELOOP, path: display) }
                let target = try readLink(current, component)
                symlinkBudget -= max(target.count, 1)
                guard symlinkBudget >= 0 else {
                    throw SystemError(call: Self.budgetExhausted, errno: EOVERFLOW, path: path.description)
                }
                if target.first == UInt8(ascii: "/") {
                    stack.removeSubrange(1...)
                    names.removeAll()
                }
                pending += target.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true).reversed()
                continue
            }
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw SystemError(call: "resolve", errno: ENOTDIR, path: display)
            }
            stack.append(opened)
            names.append(component)
        }
        return (stack[stack.count - 1], names.isEmpty ? .root : EntryPath(components: names.map { Array($0) }))
    }
}

/// readlinkat(2) of `name` in `directory`, as bytes.
func readLink(_ directory: OwnedFD, _ name: some Collection<UInt8>) throws(SystemError) -> [UInt8] {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = name.withCString { cName in readlinkat(directory.rawValue, cName, &buffer, buffer.count) }
    guard n >= 0 else {
        throw SystemError(call: "readlinkat", errno: errno, path: String(decoding: name, as: UTF8.self))
    }
    return buffer[0..<n].map { UInt8(bitPattern: $0) }
}
