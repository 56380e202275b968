import FoundationEssentials
import Glibc
import OCIImage
import UnpackSystem

/// A bundle under construction: a hidden staging directory beside the target, published by one
/// rename only when everything succeeded, and removed on any failure.
///
/// Staging directories are named `.NAME.oci-unpack-PID-RANDOM` (NAME shortened when long) and hold
/// a lock file, `.oci-unpack-lock`, that names the target and is `flock`ed for the life of the run.
/// A later run for the same target removes a staging directory only when it can take that lock:
/// its run has ended, whatever PID namespace or host it ran in (a lock on a shared filesystem is
/// released when its holder dies). Directories without the lock file, or whose lock file names
/// another target, are never touched.
package final class BundleStaging {
    package let target: String
    package let staging: String
    package var rootfs: String { staging + "/rootfs" }
    private var published = false
    private let force: Bool
    private let parent: String
    private let warn: @Sendable (String) -> Void
    /// The lock file, held locked until the staging directory is published or removed.
    private var lock: OwnedFD?

    /// The lock file's name inside a staging directory, and the first line of its content.
    static let lockName = ".oci-unpack-lock"
    static let lockMagic = "oci-unpack staging directory, locked while its run lives"
    /// Bytes of the bundle's name kept in the staging directory's name (a name is at most 255).
    static let maxNameInStaging = 120

    /// Splits a bundle path into the path without trailing slashes, its parent directory and
    /// its last component: `o` → (`o`, `.`, `o`); `/srv/b/` → (`/srv/b`, `/srv`, `b`).
    ///
    /// Done on bytes on purpose: Foundation's `deletingLastPathComponent` traps on some
    /// one-character paths (seen with `o` in a release build).
    static func split(_ path: String) -> (trimmed: String, parent: String, name: String) {
        var bytes = Array(path.utf8)
        while bytes.count > 1 && bytes.last == UInt8(ascii: "/") { bytes.removeLast() }
        let trimmed = String(decoding: bytes, as: UTF8.self)
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return (trimmed, ".", trimmed) }
        let name = String(decoding: bytes[(slash + 1)...], as: UTF8.self)
        var parentEnd = slash
        while parentEnd > 0 && bytes[parentEnd - 1] == UInt8(ascii: "/") { parentEnd -= 1 }
        let parent = parentEnd == 0 ? "/" : String(decoding: bytes[..<parentEnd], as: UTF8.self)
        return (trimmed, parent, name)
    }

    /// The staging directories' common prefix for a bundle named `name`.
    static func stagingPrefix(_ name: String) -> String {
        var kept = Array(name.utf8)
        if kept.count > maxNameInStaging {
            kept = Array(kept[..<maxNameInStaging])
            // Cut on a character boundary (never in the middle of a UTF-8 sequence).
            while let last = kept.last, last & 0xC0 == 0x80 { kept.removeLast() }
            if let last = kept.last, last >= 0xC0 { kept.removeLast() }
        }
        return ".\(String(decoding: kept, as: UTF8.self)).oci-unpack-"
    }

    /// What the lock file of a staging directory for the bundle named `name` holds.
    static func lockContent(_ name: String) -> [UInt8] {
        Array("\(lockMagic)\ntarget: \(name)\n".utf8)
    }

    /// Checks the target and creates the staging directory with an empty `rootfs/`.
    ///
    /// `warn` receives what could not be cleaned up (an old bundle that could not be removed after
    /// `force` replaced it, a staging directory that could not be removed after a failure).
    ///
    /// `namespaceRootGroup`: for a bundle that runs in a user namespace whose root is not this
    /// user (id-mapped), the host gid of that root. The bundle directory then belongs to that group
    /// with mode 0710: the runtime's init, which runs as the container's root, may pass through
    /// it to `rootfs`, and no other user may (a setuid file in the rootfs stays out of their reach).
    package init(
        target: String, force: Bool, namespaceRootGroup: gid_t? = nil,
        warn: @escaping @Sendable (String) -> Void = { _ in }
    ) throws(UnpackError) {
        let (trimmed, parent, name) = Self.split(target)
        self.target = trimmed
        self.force = force
        self.parent = parent
        self.warn = warn
        guard !name.isEmpty, name != ".", name != ".." else {
            throw UnpackError(.invalidArgument, "bundle path \(target) does not name a directory to create")
        }
        switch fileStatus(parent) {
        case .success(let st) where st.isDirectory: break
        case .success:
            throw UnpackError(
                .notFound, "the parent of bundle \(trimmed) is not a directory", context: .init(path: parent))
        case .failure(let error):
            throw error.unpackError("the parent of bundle \(trimmed) cannot be used", context: .init(path: parent))
        }
        try Self.checkTarget(trimmed, force: force)
        Self.removeStale(parent: parent, name: name, warn: warn)
        let random = String(UInt64.random(in: 0..<UInt64.max), radix: 36)
        staging = "\(parent)/\(Self.stagingPrefix(name))\(getpid())-\(random)"
        guard mkdir(staging, 0o700) == 0 else {
            throw SystemError(call: "mkdir", errno: errno, path: staging)
                .unpackError("cannot create staging directory \(staging)", context: .init(path: staging))
        }
        do throws(SystemError) {
            if let group = namespaceRootGroup {
                _ = try retryingSyscall("chown", path: staging) { chown(staging, geteuid(), group) }
                _ = try retryingSyscall("chmod", path: staging) { chmod(staging, 0o710) }
            }
            lock = try Self.createLock(in: staging, name: name)
            let rootfsPath = staging + "/rootfs"
            _ = try retryingSyscall("mkdir", path: rootfsPath) { mkdir(rootfsPath, 0o755) }
            // The image did not list the root: it gets 0755 whatever the umask (under umask 077 an
            // image user could not even traverse `/`); a root entry in a layer replaces it.
            _ = try retryingSyscall("chmod", path: rootfsPath) { chmod(rootfsPath, 0o755) }
        } catch {
            discard()
            throw error.unpackError("cannot set up staging directory \(staging)", context: .init(path: staging))
        }
    }

    /// The first directory above `target` that a process running as `uid`:`gid` (no other
    /// groups) may not search, with its mode; nil when there is none. The init of a runtime that
    /// starts an id-mapped bundle runs as the container root's host ids and passes through every
    /// one of them to reach `rootfs` (ACLs are not consulted).
    package static func firstUnsearchableParent(of target: String, uid: uid_t, gid: gid_t) -> (String, mode_t)? {
        guard let resolved = realpath(split(target).parent, nil) else { return nil }
        let parent = String(cString: resolved)
        free(resolved)
        var prefix = ""
        for component in [""] + parent.split(separator: "/").map(String.init) {
            prefix = component.isEmpty ? "/" : (prefix == "/" ? "" : prefix) + "/" + component
            var st = stat()
            guard stat(prefix, &st) == 0 else { return nil }
            let bit: mode_t = st.st_uid == uid ? 0o100 : st.st_gid == gid ? 0o010 : 0o001
            if st.st_mode & bit == 0 { return (prefix, st.st_mode & 0o7777) }
        }
        return nil
    }

    /// Refuses a target that a rename cannot replace or that `force` must not delete: a symlink,
    /// a mount point, a non-directory, a non-empty directory without `force`, and (with `force`) a
    /// directory with mounts inside, which removing the old bundle would empty. Called before any
    /// work (so that such a target fails at once), again when staging starts and before publishing.
    package static func checkTarget(_ target: String, force: Bool) throws(UnpackError) {
        let target = split(target).trimmed
        let context = UnpackError.Context(path: target)
        var st = stat()
        guard lstat(target, &st) == 0 else {
            if errno == ENOENT { return }
            throw SystemError(call: "lstat", errno: errno, path: target)
                .unpackError("bundle \(target) cannot be examined", context: context)
        }
        if (st.st_mode & S_IFMT) == S_IFLNK {
            throw UnpackError(
                .invalidArgument,
                "bundle \(target) is a symlink: give the directory it points to (a rename would replace the link, not the bundle)",
                context: context)
        }
        guard st.isDirectory else {
            throw UnpackError(.bundleExists, "bundle \(target) exists and is not a directory", context: context)
        }
        guard let mounts = mountsInside(target) else {
            // Without /proc nobody can tell what is mounted inside: never delete on a guess.
            let empty = (try? FileManager.default.contentsOfDirectory(atPath: target))?.isEmpty ?? false
            if force && !empty {
                throw UnpackError(
                    .bundleExists,
                    "bundle \(target) cannot be checked for mounts inside (/proc/self/mountinfo cannot be read): refusing --force, which could delete what they hold",
                    context: context)
            }
            return
        }
        if let first = mounts.first, first.isTarget {
            throw UnpackError(
                .invalidArgument,
                "bundle \(target) is a mount point: a bundle is published by renaming a directory onto it, which a mount point refuses; give a directory inside it",
                context: context)
        }
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: target)) ?? []
        if !contents.isEmpty && !force {
            throw UnpackError(
                .bundleExists, "bundle \(target) exists and is not empty (use --force to replace it)", context: context)
        }
        if !mounts.isEmpty {
            throw UnpackError(
                .bundleExists,
                "bundle \(target) has mounts inside (\(mounts.map(\.path).joined(separator: ", "))): --force would delete what they hold; unmount them first",
                context: context)
        }
    }

    /// Mounts at or below `path`: `isTarget` for `path` itself.
    /// `nil` when the mounts cannot be known (no /proc, or no real path for `path`).
    private static func mountsInside(_ path: String) -> [(path: String, isTarget: Bool)]? {
        guard let canonical = canonicalPath(path) else { return nil }
        return mountPoints(under: canonical)?.map { ($0, $0 == canonical) }
    }

    /// Creates, locks, then fills the lock file: a sweeper that takes the lock before it is
    /// filled finds no content and leaves the directory alone.
    private static func createLock(in staging: String, name: String) throws(SystemError) -> OwnedFD {
        let path = "\(staging)/\(lockName)"
        let fd = try OwnedFD(
            retryingSyscall("open", path: path) {
                open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            })
        if lockExclusive(fd.rawValue, wait: true) != 0 { throw SystemError(call: "flock", errno: errno, path: path) }
        try writeAll(fd.rawValue, lockContent(name), path: path)
        return fd
    }

    /// Writes a file at the top of the bundle (`config.json`), mode 0644.
    package func write(_ name: String, _ bytes: [UInt8]) throws(UnpackError) {
        let path = "\(staging)/\(name)"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw SystemError(call: "open", errno: errno, path: path).unpackError("cannot create \(path)")
        }
        defer { close(fd) }
        try SystemError.mapping({ () throws(SystemError) in try writeAll(fd, bytes, path: path) }) {
            $0.unpackError("cannot write \(path)")
        }
        // umask 077 must not make config.json unreadable to a runtime running as another user.
        if fchmod(fd, 0o644) != 0 {
            throw SystemError(call: "fchmod", errno: errno, path: path).unpackError("cannot write \(path)")
        }
    }

    /// Moves the staging directory to the target: a rename when there is none, an atomic exchange
    /// (then removal of the old one) when it exists.
    ///
    /// Refuses to publish a staging directory that lost its lock file (something removed files of
    /// this run), and, with `force`, an old bundle that got mounts inside since the start.
    package func publish() throws(UnpackError) {
        let context = UnpackError.Context(path: target)
        let lockPath = "\(staging)/\(Self.lockName)"
        var held = stat()
        var named = stat()
        guard let lock, fstat(lock.rawValue, &held) == 0, held.st_nlink > 0, lstat(lockPath, &named) == 0,
            named.st_ino == held.st_ino, named.st_dev == held.st_dev
        else {
            throw UnpackError(
                .io,
                "staging directory \(staging) was changed by another process while unpacking (its lock file is gone): refusing to publish a bundle that may have lost files",
                context: context)
        }
        // Unlinked first: from here on no sweeper can take the directory for a leftover, and the
        // bundle holds no file of ours.
        guard unlink(lockPath) == 0 else {
            throw SystemError(call: "unlink", errno: errno, path: lockPath)
                .unpackError("cannot publish bundle \(target)", context: context)
        }
        if rename(staging, target) == 0 {
            published = true
            self.lock = nil
            return
        }
        let renameError = errno
        if (renameError == EEXIST || renameError == ENOTEMPTY) && !force {
            // Filled by someone else (another run) since we checked: never replace it unasked.
            throw UnpackError(
                .bundleExists, "bundle \(target) was filled while unpacking (use --force to replace it)",
                context: context)
        }
        guard renameError == EEXIST || renameError == ENOTEMPTY else {
            throw SystemError(call: "rename", errno: renameError, path: target)
                .unpackError("cannot move the bundle into \(target)", context: context)
        }
        // Checked again: a mount may have appeared inside the old bundle while unpacking.
        try Self.checkTarget(target, force: true)
        do {
            try exchangePaths(staging, target)
        } catch {
            throw error.unpackError("cannot replace bundle \(target)", context: context)
        }
        published = true
        self.lock = nil
        // The staging path now holds the old bundle.
        do throws(SystemError) {
            try removeDirectoryTree(staging)
        } catch {
            warn("the replaced bundle was moved to \(staging) but could not be removed: \(error)")
        }
    }

    /// Removes the staging directory (after a failure); what cannot be removed is reported.
    package func discard() {
        guard !published else { return }
        do throws(SystemError) {
            try removeDirectoryTree(staging)
        } catch {
            warn("staging directory \(staging) could not be removed: \(error)")
        }
        lock = nil
    }

    deinit { discard() }

    /// Removes staging directories for the same bundle whose runs have ended: only those holding a
    /// lock file for this bundle that can be locked now. The lock is held while removing.
    private static func removeStale(parent: String, name: String, warn: (String) -> Void) {
        let prefix = stagingPrefix(name)
        let expected = lockContent(name)
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return }
        for entry in entries where entry.hasPrefix(prefix) {
            let directory = "\(parent)/\(entry)"
            var st = stat()
            guard lstat(directory, &st) == 0, st.isDirectory else { continue }
            let lockPath = "\(directory)/\(lockName)"
            let fd = open(lockPath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else { continue }
            let lock = OwnedFD(fd)
            guard (try? lock.status())?.isRegularFile == true, lockExclusive(lock.rawValue, wait: false) == 0,
                (try? lock.readAll(limit: 4096)) == expected
            else { continue }
            do throws(SystemError) {
                try removeDirectoryTree(directory)
            } catch {
                warn("the staging directory \(directory) of an ended run could not be removed: \(error)")
            }
        }
    }
}
