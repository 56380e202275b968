import LayerStream
import OCIImage
import TarArchive
import UnpackSystem

/// How a layer's whiteouts and opaque markers are written.
package enum WhiteoutPolicy: Sendable, Equatable {
    /// Applied in the root (image-spec's layer.md): what they name in lower layers is removed,
    /// and no marker is left. The one policy for a root filesystem that holds every layer.
    case apply
    /// Written in overlayfs form, for a directory that holds this layer alone and is mounted as
    /// one lower directory of an overlay: a whiteout becomes a 0:0 character device of the hidden
    /// name, an opaque marker the `overlay.opaque` xattr (`y`) on its directory.
    case overlay(OverlayXattrs)

    /// The namespace overlayfs reads its xattrs from.
    package enum OverlayXattrs: String, Sendable {
        /// `trusted.overlay.*`: the kernel's default; setting it needs root in the initial user
        /// namespace.
        case trusted
        /// `user.overlay.*`: read by a mount with `userxattr` (Linux 5.11), for rootless overlays.
        case user

        /// The opaque xattr's name.
        package var opaqueName: String { "\(rawValue).overlay.opaque" }
        /// What overlayfs keeps for itself in this namespace: an image may not set it.
        package var prefix: String { "\(rawValue).overlay." }
    }
}

/// The OCI layer rules (image-spec's layer.md) in one place, for every tree a layer is applied to:
/// the directory a bundle's root filesystem is written to, the in-memory tree `verify-variants`
/// compares, and any other output. What an entry means (a whiteout, an opaque marker, the root,
/// something to create), the per-entry limits, and which lower-layer paths a whiteout or marker
/// removes are decided here; a tree only resolves, creates and removes (``LayerTree``).
package enum LayerRules {
    package static let whiteoutPrefix = Array(".wh.".utf8)
    package static let opaqueMarker = Array(".wh..wh..opq".utf8)
    package static let aufsMetaPrefix = Array(".wh..wh.".utf8)

    /// What one tar entry asks of the tree.
    package enum Action: Equatable {
        /// A directory entry for the root itself: its metadata.
        case describeRoot
        /// A whiteout: `hidden`, in the entry's parent, is removed from lower layers.
        case whiteout(hidden: [UInt8])
        /// An opaque marker: the lower children of the entry's parent directory are hidden.
        case opaque
        /// An aufs metadata entry (`.wh..wh.plnk`, …): ignored, with a warning.
        case aufsMetadata
        /// A socket: not unpacked, with a warning.
        case socket
        /// A file, directory, link or node to create at the entry's path.
        case create
    }

    /// What `entry` (at cleaned `path`) asks for. Refuses `.wh.`, `.wh..` and `.wh...`, which name
    /// nothing, the directory itself or its parent, and anything but a directory for the root.
    package static func action(_ entry: TarEntry, at path: EntryPath) throws(UnpackError) -> Action {
        let name = path.name
        if name.starts(with: whiteoutPrefix) {
            if name.elementsEqual(opaqueMarker) { return .opaque }
            if name.starts(with: aufsMetaPrefix) { return .aufsMetadata }
            let hidden = name.dropFirst(whiteoutPrefix.count)
            if hidden.isEmpty || hidden.elementsEqual(".".utf8) || hidden.elementsEqual("..".utf8) {
                throw UnpackError(
                    .unsafePath, "invalid whiteout \(entry.displayPath)", context: .init(path: entry.displayPath))
            }
            return .whiteout(hidden: Array(hidden))
        }
        if path.isRoot {
            guard entry.kind == .directory else {
                throw UnpackError(
                    .unsafePath, "tar entry \(entry.displayPath) would replace the root directory",
                    context: .init(path: entry.displayPath))
            }
            return .describeRoot
        }
        return entry.kind == .socket ? .socket : .create
    }

    /// The warning for an entry the rules leave out (`.aufsMetadata`, `.socket`).
    package static func skipWarning(_ action: Action, _ entry: TarEntry) -> String? {
        switch action {
        case .aufsMetadata: "ignoring aufs metadata entry \(entry.displayPath)"
        case .socket: "skipping socket \(entry.displayPath): sockets cannot be unpacked"
        default: nil
        }
    }

    /// The per-entry limits (entries per layer, path and link bytes, depth, xattr bytes), for the
    /// `count`th entry of a layer: the same for every tree.
    package static func check(_ entry: TarEntry, count: Int, limits: UnpackLimits) throws(UnpackError) {
        // Built only when a limit is exceeded: this runs for every entry.
        var context: UnpackError.Context { UnpackError.Context(path: String(entry.displayPath.prefix(200))) }
        guard count <= limits.maxEntriesPerLayer else {
            throw UnpackError(
                .limitExceeded,
                "the layer has more than \(limits.maxEntriesPerLayer) entries (limit entries-per-layer)",
                context: context)
        }
        guard entry.path.count <= limits.maxPathBytes, entry.linkTarget.count <= limits.maxPathBytes else {
            throw UnpackError(
                .limitExceeded,
                "tar entry \(context.path ?? "") has a path or link target longer than \(limits.maxPathBytes) bytes (limit path-bytes)",
                context: context)
        }
        guard depth(of: entry.path) < limits.maxPathDepth else {
            throw UnpackError(
                .limitExceeded,
                "tar entry \(context.path ?? "") is nested deeper than \(limits.maxPathDepth) directories (limit path-depth)",
                context: context)
        }
        let xattrBytes = entry.xattrs.reduce(0) { $0 + $1.name.utf8.count + $1.value.count }
        guard xattrBytes <= limits.maxXattrBytesPerEntry else {
            throw UnpackError(
                .limitExceeded,
                "tar entry \(context.path ?? "") carries \(xattrBytes) bytes of xattrs, over the \(limits.maxXattrBytesPerEntry)-byte limit (limit xattr-bytes-per-entry)",
                context: context)
        }
    }

    /// Directories above an entry: its components, not counting empty ones (`a////b`) or `.`,
    /// less one. `..` is counted as written (an upper bound on the cleaned depth).
    package static func depth(of path: [UInt8]) -> Int {
        var components = 0
        var length = 0
        var dotOnly = true
        for byte in path {
            if byte == UInt8(ascii: "/") {
                if length > 0 && !(dotOnly && length == 1) { components += 1 }
                length = 0
                dotOnly = true
            } else {
                length += 1
                if byte != UInt8(ascii: ".") { dotOnly = false }
            }
        }
        if length > 0 && !(dotOnly && length == 1) { components += 1 }
        return max(components - 1, 0)
    }

    /// Whether `entry` is one of a layer format's own entries (`LayerFormat.metadataEntries`): a
    /// regular file at the top of the layer with one of those names.
    package static func isFormatMetadata(_ entry: TarEntry, _ names: Set<[UInt8]>) -> Bool {
        guard !names.isEmpty, entry.kind == .regular else { return false }
        let path = EntryPath(cleaning: entry.path)
        return path.parentKey.isEmpty && names.contains(path.key)
    }

    /// Whether a hardlink whose target resolves to `target` would lose it by replacing the
    /// directory at `replaced`: the target lies inside it (refused, on disk as in memory).
    package static func hardlinkTargetIsInside(_ target: EntryPath, replacedDirectory replaced: EntryPath) -> Bool {
        target.components.starts(with: replaced.components)
    }

    // MARK: - Lower layers

    /// Removes `name` from `parent` unless this layer made it; a directory this layer holds
    /// content in loses only its lower-layer children (once: later markers for it are free, which
    /// keeps crafted layers linear).
    package static func removeLower<Tree: LayerTree>(
        in parent: Tree.Directory, _ name: [UInt8], tree: Tree, layer: inout Tree.Layer
    ) throws(SystemError) {
        if layer.marks.spares(tree.slot(name, in: parent)) { return }
        if let key = tree.directoryKey(name, in: parent), layer.marks.holdsContent(key),
            let directory = try tree.openDirectory(name, in: parent)
        {
            try hideLowerChildren(of: directory, key: key, tree: tree, layer: &layer)
            return
        }
        try tree.remove(name, in: parent, layer: &layer)
    }

    /// An opaque marker's work (or a whiteout's on a directory of this layer): every child of
    /// `directory` that came from lower layers goes, wherever the marker stands among the layer's
    /// entries.
    package static func hideLowerChildren<Tree: LayerTree>(
        of directory: Tree.Directory, key: Tree.DirectoryKey, tree: Tree, layer: inout Tree.Layer
    ) throws(SystemError) {
        layer.marks.directories.insert(key)
        guard layer.marks.cleaned.insert(key).inserted else { return }
        tree.willChange(directory, layer: &layer)
        for child in try tree.children(of: directory) {
            try removeLower(in: directory, child, tree: tree, layer: &layer)
        }
    }
}

/// What one layer made, by the identities its tree gives paths: its whiteouts spare these.
package struct LayerMarks<SlotKey: Hashable, DirectoryKey: Hashable> {
    /// Non-directory paths this layer created: whiteouts of this layer never touch them.
    package var slots: Set<SlotKey> = []
    /// Directories this layer listed, and every ancestor of its paths: whiteouts descend into them
    /// and remove only what lower layers put there.
    package var directories: Set<DirectoryKey> = []
    /// Directories whose lower-layer children are already gone (an opaque marker or a whiteout
    /// processed them): further markers for them have nothing to do.
    package var cleaned: Set<DirectoryKey> = []

    package init() {}

    package func spares(_ key: SlotKey) -> Bool { slots.contains(key) }
    package func holdsContent(_ key: DirectoryKey) -> Bool { directories.contains(key) }
}

/// A tree the layer rules remove lower-layer paths from: a directory on disk, or one in memory.
/// Its keys name a path's slot for the whole layer (the on-disk tree's canonical paths, the
/// in-memory tree's node serials), so that the rules can tell this layer's paths from lower ones.
package protocol LayerTree: AnyObject {
    /// An open directory (an fd and its canonical path; a node).
    associatedtype Directory
    /// The identity of a non-directory slot in the layer's marks.
    associatedtype SlotKey: Hashable
    /// The identity of a directory in the layer's marks.
    associatedtype DirectoryKey: Hashable
    /// The tree's record of the current layer, which holds the rules' marks.
    associatedtype Layer: LayerRecord where Layer.SlotKey == SlotKey, Layer.DirectoryKey == DirectoryKey

    /// The key of the non-directory slot `name` in `parent`.
    func slot(_ name: [UInt8], in parent: Directory) -> SlotKey
    /// The key `name` in `parent` has as a directory, if it may be one (cheap: no system call).
    func directoryKey(_ name: [UInt8], in parent: Directory) -> DirectoryKey?
    /// `name` in `parent`, opened, when it is a directory (symlinks not followed).
    func openDirectory(_ name: [UInt8], in parent: Directory) throws(SystemError) -> Directory?
    /// The names in `directory`.
    func children(of directory: Directory) throws(SystemError) -> [[UInt8]]
    /// Removes `name` (a whole tree) from `parent`.
    func remove(_ name: [UInt8], in parent: Directory, layer: inout Layer) throws(SystemError)
    /// `directory` is about to lose children in this layer (an on-disk tree keeps its times).
    func willChange(_ directory: Directory, layer: inout Layer)
}

/// A tree's record of one layer: the rules' marks and whatever else the tree keeps.
package protocol LayerRecord {
    associatedtype SlotKey: Hashable
    associatedtype DirectoryKey: Hashable
    var marks: LayerMarks<SlotKey, DirectoryKey> { get set }
}
