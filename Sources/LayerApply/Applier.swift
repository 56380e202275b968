import Glibc
import LayerEngine
import LayerStream
import OCIImage
import TarArchive
import UnpackSystem

/// How entries are applied.
package struct ApplyOptions: Sendable {
    /// Whose ids the files get (default: the image's as root, rootless otherwise).
    package var ownership: Ownership
    /// Use the userspace in-root resolver even where openat2 exists (tests).
    package var forceUserspaceResolver: Bool
    /// Finish small files (data, owner, mode, xattrs, times) on a second thread; off, everything
    /// happens on the applier's thread (tests cover both).
    package var finishFilesInParallel: Bool
    /// Receives warnings (skipped devices, unsupported xattrs, libarchive warnings).
    package var warn: @Sendable (String) -> Void
    /// Entry count, path and xattr limits (the others are enforced by the pipeline).
    package var limits: UnpackLimits
    /// Whiteouts applied in the root (a bundle's rootfs), or written in overlay form (a layer
    /// directory that holds one layer alone).
    package var whiteouts: WhiteoutPolicy = .apply
    /// The system calls that create and write entries (tests make them fail: a full disk, EIO).
    package var systemCalls: SystemCalls = .real
    /// Tests only: a umask to assume instead of the process's (a wrong one must be caught by the
    /// per-directory check of the metadata shortcut).
    var assumedUmask: mode_t?

    package init(
        ownership: Ownership = .automatic, forceUserspaceResolver: Bool = false,
        finishFilesInParallel: Bool = true,
        warn: @escaping @Sendable (String) -> Void = { _ in }, limits: UnpackLimits = .init()
    ) {
        self.limits = limits
        self.ownership = ownership
        self.forceUserspaceResolver = forceUserspaceResolver
        self.finishFilesInParallel = finishFilesInParallel
        self.warn = warn
    }
}

/// Applies tar layers, in order, onto a root filesystem directory with the layer.md semantics:
/// whiteouts and opaque markers hide only what lower layers made, an existing directory keeps its
/// children when a directory entry lands on it, and any other collision replaces the old path.
///
/// Every path is resolved inside the root (see `RootDirectory`); the last component is never
/// followed, and every metadata call works on an fd or with AT_SYMLINK_NOFOLLOW.
package final class Applier {
    package let root: RootDirectory
    let options: ApplyOptions
    /// Called between entries; throws to stop (interrupts).
    let checkpoint: () throws(UnpackError) -> Void

    /// Work counters, for tests that prove crafted layers cannot make the work superlinear.
    package struct Statistics: Sendable, Equatable {
        /// Directories listed to apply whiteouts and opaque markers.
        package var directoryListings = 0
        /// Entries applied.
        package var entries = 0
    }

    package internal(set) var statistics = Statistics()
    /// Whether the current entry removed something in its way (then the parent cache is dropped).
    var replaced = false
    /// Finishes small files on a second thread during `apply`.
    var finisher: FileFinisher?
    /// The owner of what this process creates (a setgid parent directory overrides the group).
    let creatorUID = geteuid()
    let creatorGID = getegid()
    /// The process umask, when it could be read: a file created with its final mode under it then
    /// needs no chmod. Read once; changing the umask during an unpack is not supported.
    let umask: mode_t?
    /// Whether the metadata shortcut still holds: the first entry of each mode created in each
    /// directory is checked with fstat against the prediction, and one miss (a filesystem that decides owners
    /// or modes itself: `grpid` mounts, NFS squashing, NFSv4 ACLs, `fmask`) turns it off for the
    /// rest of the unpack.
    var shortcutHolds = true
    /// Whether a default ACL may apply to new files (the root has one, or a layer set one): it
    /// replaces the umask, so every mode is then set explicitly.
    var defaultACL: Bool
    /// The ids this process can give files (all of them outside a user namespace).
    let idMapping = IDMapping.current
    /// Whether every id is mapped (outside a user namespace): then no entry needs the range check.
    let mapsAllIDs = IDMapping.current.mapsEverything
    /// Root in the initial user namespace: devices, any owner, `trusted.*` and file capabilities.
    let fullyPrivileged = IDMapping.fullyPrivileged
    /// `options.ownership` is `.rootless`.
    let rootless: Bool
    /// What is kept across the layers of one unpack.
    var unpack = UnpackState()
    /// What the current layer made (see `LayerConsumer`).
    var layer = LayerState()

    package init(
        rootPath: String, options: ApplyOptions = .init(),
        checkpoint: @escaping () throws(UnpackError) -> Void = {}
    ) throws(UnpackError) {
        // Read once: the root needs it to give unlisted directories 0755, the shortcut to predict
        // modes (tests may make the shortcut assume another).
        let processUmask = Self.readUmask()
        root = try RootDirectory(
            path: rootPath, forceUserspaceResolver: options.forceUserspaceResolver, umask: processUmask)
        self.options = options
        self.checkpoint = checkpoint
        rootless = options.ownership == .rootless
        if case .mapped(let uids, let gids, _) = options.ownership {
            // What the image does not list (the root, parents of entries) belongs to the
            // container's root, as it would in a plain unpack.
            let owner = (uids.hostID(for: 0) ?? Self.overflowID, gids.hostID(for: 0) ?? Self.overflowID)
            root.implicitOwner = owner
            if fchownat(root.fd.rawValue, "", owner.0, owner.1, AT_EMPTY_PATH_VALUE) != 0 {
                throw SystemError(call: "fchownat", errno: errno, path: rootPath)
                    .unpackError("cannot give the root filesystem to the container's root")
            }
        }
        umask = options.assumedUmask ?? processUmask
        // ENODATA (no ACL) or ENOTSUP (no ACLs here) both mean none; anything else, assume one.
        // `/.` names the directory itself even when rootPath is a symlink to it.
        let probe = CSys.lgetxattrSize(rootPath + "/.", Self.defaultACLName)
        defaultACL = probe >= 0 || (errno != ENODATA && errno != ENOTSUP && errno != EOPNOTSUPP)
    }

    static let defaultACLName = "system.posix_acl_default"

    /// The `Umask:` line of /proc/self/status (Linux 4.7 and later), or nil.
    static func readUmask() -> mode_t? {
        guard let status = try? OwnedFD.openForReading("/proc/self/status").readAll(limit: 1 << 16) else {
            return nil
        }
        // The line "Umask:\t0022", read as bytes (String splitting costs more at start-up than the
        // whole rest of the applier's set-up).
        var lineStart = status.startIndex
        while lineStart < status.endIndex {
            let lineEnd = status[lineStart...].firstIndex(of: 0x0a) ?? status.endIndex
            let line = status[lineStart..<lineEnd]
            lineStart = lineEnd + 1
            guard line.starts(with: "Umask:".utf8) else { continue }
            let digits = line.dropFirst(6).drop(while: { $0 == 0x09 || $0 == 0x20 })
            guard !digits.isEmpty, digits.count <= 6 else { return nil }
            var value: mode_t = 0
            for digit in digits {
                guard (0x30...0x37).contains(digit) else { return nil }
                value = value << 3 | mode_t(digit - 0x30)
            }
            return value
        }
        return nil
    }

    /// What an entry just created by this applier already has, so that setting it again can be
    /// skipped: owner (the creator, or a setgid parent's group) and, when known, mode.
    struct Fresh {
        var uid: uid_t
        var gid: gid_t
        var mode: mode_t?

        func owned(by owner: (uid: uid_t, gid: gid_t)) -> Bool { uid == owner.uid && gid == owner.gid }
    }

    /// Applies every entry of `reader` as one layer, unverified (tests, fuzzing); returns the
    /// number of entries. An unpack feeds the applier through `LayerDriver` instead.
    @discardableResult
    package func apply(_ reader: TarReader, skipping metadata: Set<[UInt8]> = []) throws(UnpackError) -> Int {
        try LayerDriver.apply(
            reader, to: self, skipping: metadata, limits: options.limits, checkpoint: checkpoint)
    }

    /// Runs one system-level step of applying `entry`: its `SystemError` becomes the entry's
    /// `UnpackError` here, once.
    func step<T>(_ entry: TarEntry, _ body: () throws(SystemError) -> T) throws(UnpackError) -> T {
        do throws(SystemError) {
            return try body()
        } catch {
            throw systemFailure(error, entry: entry)
        }
    }

    func systemFailure(_ error: SystemError, entry: TarEntry) -> UnpackError {
        let context = UnpackError.Context(path: entry.displayPath)
        if error.call == RootDirectory.budgetExhausted {
            return UnpackError(
                .limitExceeded,
                "resolving tar entry \(entry.displayPath) followed more than \(options.limits.maxSymlinkBytesPerLayer) bytes of symlink targets in this layer (limit symlink-bytes-per-layer)",
                context: context, underlying: error)
        }
        switch error.errno {
        case ELOOP:
            return UnpackError(
                .unsafePath, "resolving tar entry \(entry.displayPath) met too many symlinks", context: context,
                underlying: error)
        case ENOTDIR:
            return UnpackError(
                .corruptLayer, "tar entry \(entry.displayPath): a parent is not a directory (\(error))",
                context: context, underlying: error)
        case EXDEV:
            return UnpackError(
                .unsafePath, "tar entry \(entry.displayPath) resolves outside the root filesystem", context: context,
                underlying: error)
        default:
            return error.unpackError("applying tar entry \(entry.displayPath) failed (\(error.call))", context: context)
        }
    }
}
