import Crypto
import Glibc
import LayerEngine
import LayerStream
import OCIImage
import TarArchive
import UnpackSystem

/// A root filesystem built in memory from tar headers and content digests: layers are applied as
/// the applier applies them onto a directory (whiteouts hide only lower layers' paths, an opaque
/// marker hides a directory's lower children wherever it stands, symlinks on the way of a path are
/// followed inside the root, a hardlink shares its target's inode), but nothing is written. Memory
/// grows with the number of entries, not with their bytes.
package final class VirtualTree {
    /// One inode: directories hold their children; hardlinks share the node.
    package final class Node {
        /// Distinct for every node ever made: identities in the per-layer sets never collide with
        /// those of removed nodes.
        let serial: Int
        var kind: TarEntry.Kind
        var mode: UInt32
        var uid: Int64
        var gid: Int64
        var size: Int64 = 0
        /// SHA-256 of a regular file's content (holes of sparse files read as zeros).
        var content: [UInt8] = []
        var linkTarget: [UInt8] = []
        var deviceMajor: UInt32 = 0
        var deviceMinor: UInt32 = 0
        var xattrs: [String: [UInt8]] = [:]
        /// nil for a directory no entry described (created because a path went through it).
        var mtime: timespec?
        var children: [[UInt8]: Node] = [:]

        init(serial: Int, kind: TarEntry.Kind, mode: UInt32, uid: Int64, gid: Int64) {
            self.serial = serial
            self.kind = kind
            self.mode = mode
            self.uid = uid
            self.gid = gid
        }
    }

    /// A non-directory slot in the layer rules' marks: its parent directory's serial and its
    /// name (a directory is marked by its serial).
    package struct Slot: Hashable {
        let parent: Int
        let name: [UInt8]
    }

    /// What one layer made, by identity: its whiteouts spare these.
    package struct Layer: LayerRecord {
        package var marks = LayerMarks<Slot, Int>()
        var symlinkBytes = 0
    }

    package let root: Node
    private var nextSerial = 1
    private var layer = Layer()
    private let limits: UnpackLimits
    private let onWarning: (String) -> Void

    package init(limits: UnpackLimits = .init(), onWarning: @escaping (String) -> Void = { _ in }) {
        self.limits = limits
        self.onWarning = onWarning
        root = Node(serial: 0, kind: .directory, mode: 0o755, uid: 0, gid: 0)
    }

    /// Starts a layer: what the previous layers made is now lower.
    package func beginLayer(at position: Int) {
        layer = Layer()
    }

    /// Applies one tar entry; `content` is the SHA-256 of a regular file's data.
    package func apply(_ entry: TarEntry, content: [UInt8]) throws(UnpackError) {
        let path = EntryPath(cleaning: entry.path)
        let name = path.name
        let action = try LayerRules.action(entry, at: path)
        switch action {
        case .create, .socket: break
        case .whiteout(let hidden):
            try whiteout(path, hidden: hidden, entry: entry)
            return
        case .opaque:
            try opaque(path, entry: entry)
            return
        case .aufsMetadata:
            if let warning = LayerRules.skipWarning(action, entry) { onWarning(warning) }
            return
        case .describeRoot:
            describe(root, entry: entry, keepingXattrs: true)
            return
        }
        guard let chain = try resolve(path.parent, create: true, entry: entry) else {
            throw UnpackError(
                .corruptLayer, "tar entry \(entry.displayPath): a parent is not a directory",
                context: .init(path: entry.displayPath))
        }
        let parent = chain[chain.count - 1]
        let key = Array(name)
        if action == .socket {
            // Its parents were made, as for any entry; the socket itself is left out.
            if let warning = LayerRules.skipWarning(action, entry) { onWarning(warning) }
            return
        }
        markOnTheWay(chain)
        switch entry.kind {
        case .directory:
            let node: Node
            if let existing = parent.children[key], existing.kind == .directory {
                node = existing
                describe(node, entry: entry, keepingXattrs: true)
            } else {
                node = makeNode(entry)
                parent.children[key] = node
            }
            layer.marks.directories.insert(node.serial)
            return
        case .hardlink:
            // Linking a name to the inode it already has changes nothing.
            let target = try hardlinkTarget(entry)
            if let existing = parent.children[key], existing.kind == .directory, Self.holds(existing, target) {
                // LayerRules.hardlinkTargetIsInside, decided on nodes: the target lies in the
                // directory the link replaces.
                throw UnpackError(
                    .corruptLayer,
                    "hardlink \(entry.displayPath) points at \(DisplayText.escaping(entry.linkTarget)), inside the directory it would replace",
                    context: .init(path: entry.displayPath))
            }
            if parent.children[key] !== target { parent.children[key] = target }
        case .regular:
            let node = makeNode(entry)
            node.content = content
            parent.children[key] = node
        case .symlink, .characterDevice, .blockDevice, .fifo, .socket:
            parent.children[key] = makeNode(entry)
        }
        layer.marks.slots.insert(Slot(parent: parent.serial, name: key))
    }

    // MARK: - Entries

    private func makeNode(_ entry: TarEntry) -> Node {
        let node = Node(serial: nextSerial, kind: entry.kind, mode: 0, uid: 0, gid: 0)
        nextSerial += 1
        describe(node, entry: entry, keepingXattrs: false)
        return node
    }

    /// The entry's metadata on `node`. An existing directory keeps the xattrs it had (setting one
    /// does not remove the others).
    private func describe(_ node: Node, entry: TarEntry, keepingXattrs: Bool) {
        node.mode = entry.kind == .symlink ? 0o777 : entry.mode & 0o7777
        node.uid = entry.uid
        node.gid = entry.gid
        node.mtime = entry.mtime
        if !keepingXattrs { node.xattrs = [:] }
        for (name, value) in entry.xattrs { node.xattrs[name] = value }
        switch entry.kind {
        case .regular: node.size = entry.size
        case .symlink: node.linkTarget = entry.linkTarget
        case .characterDevice, .blockDevice:
            node.deviceMajor = entry.deviceMajor
            node.deviceMinor = entry.deviceMinor
        default: break
        }
    }

    /// Whether `node` is among the descendants of `directory` (which the caller is about to
    /// replace, so the walk is paid for by the removal).
    private static func holds(_ directory: Node, _ node: Node) -> Bool {
        var pending = [directory]
        while let next = pending.popLast() {
            for child in next.children.values {
                if child === node { return true }
                if child.kind == .directory { pending.append(child) }
            }
        }
        return false
    }

    private func hardlinkTarget(_ entry: TarEntry) throws(UnpackError) -> Node {
        let targetPath = EntryPath(cleaning: entry.linkTarget)
        let display = DisplayText.escaping(entry.linkTarget)
        guard !targetPath.isRoot else {
            throw UnpackError(
                .unsafePath, "hardlink \(entry.displayPath) points at the root directory",
                context: .init(path: entry.displayPath))
        }
        guard let chain = try resolve(targetPath.parent, create: false, entry: entry),
            let target = chain[chain.count - 1].children[Array(targetPath.name)]
        else {
            throw UnpackError(
                .corruptLayer, "hardlink \(entry.displayPath) points at \(display), which does not exist",
                context: .init(path: entry.displayPath))
        }
        guard target.kind != .directory else {
            throw UnpackError(
                .corruptLayer, "hardlink \(entry.displayPath) points at directory \(display)",
                context: .init(path: entry.displayPath))
        }
        return target
    }

    // MARK: - Whiteouts

    private func opaque(_ path: EntryPath, entry: TarEntry) throws(UnpackError) {
        let written = path.parent
        let directory: Node
        if written.isRoot {
            directory = root
        } else {
            // A marker under a symlink or a file has no lower directory to hide.
            guard let chain = try resolve(written.parent, create: true, entry: entry) else { return }
            let holder = chain[chain.count - 1]
            markOnTheWay(chain)
            if let existing = holder.children[Array(written.name)] {
                guard existing.kind == .directory else { return }
                directory = existing
            } else {
                directory = makeImplicitDirectory()
                holder.children[Array(written.name)] = directory
            }
        }
        try rules { tree, layer throws(SystemError) in
            try LayerRules.hideLowerChildren(
                of: directory, key: directory.serial, tree: tree, layer: &layer)
        }
    }

    private func whiteout(_ path: EntryPath, hidden: [UInt8], entry: TarEntry) throws(UnpackError) {
        guard let chain = try resolve(path.parent, create: false, entry: entry) else { return }
        let parent = chain[chain.count - 1]
        try rules { tree, layer throws(SystemError) in
            try LayerRules.removeLower(in: parent, hidden, tree: tree, layer: &layer)
        }
    }

    /// Runs the layer rules on this tree (nothing in memory fails).
    private func rules(_ body: (VirtualTree, inout Layer) throws(SystemError) -> Void) throws(UnpackError) {
        do throws(SystemError) {
            try body(self, &layer)
        } catch {
            throw error.unpackError("applying whiteouts in memory failed")
        }
    }

    // MARK: - Resolution

    private func makeImplicitDirectory() -> Node {
        let node = Node(serial: nextSerial, kind: .directory, mode: 0o755, uid: 0, gid: 0)
        nextSerial += 1
        return node
    }

    /// The directories on the way hold this layer's content: its whiteouts descend into them.
    private func markOnTheWay(_ chain: [Node]) {
        for node in chain.dropFirst() { layer.marks.directories.insert(node.serial) }
    }

    /// The directories from the root to `path`, following symlinks inside the root (`..` stops at
    /// the root), creating missing ones as 0755 when `create`; nil when a non-directory stands on
    /// the way (or, without `create`, something is missing).
    private func resolve(_ path: EntryPath, create: Bool, entry: TarEntry) throws(UnpackError) -> [Node]? {
        var stack: [Node] = [root]
        var pending: [ArraySlice<UInt8>] = path.components.reversed()
        var followed = 0
        while let component = pending.popLast() {
            if component.isEmpty || component.elementsEqual(".".utf8) { continue }
            if component.elementsEqual("..".utf8) {
                if stack.count > 1 { stack.removeLast() }
                continue
            }
            let current = stack[stack.count - 1]
            let key = Array(component)
            guard let next = current.children[key] else {
                guard create else { return nil }
                let made = makeImplicitDirectory()
                current.children[key] = made
                stack.append(made)
                continue
            }
            switch next.kind {
            case .directory:
                stack.append(next)
            case .symlink:
                followed += 1
                guard followed <= 40 else {
                    throw UnpackError(
                        .unsafePath, "resolving tar entry \(entry.displayPath) met too many symlinks",
                        context: .init(path: entry.displayPath))
                }
                layer.symlinkBytes += max(next.linkTarget.count, 1)
                guard layer.symlinkBytes <= limits.maxSymlinkBytesPerLayer else {
                    throw UnpackError(
                        .limitExceeded,
                        "resolving tar entry \(entry.displayPath) followed more than \(limits.maxSymlinkBytesPerLayer) bytes of symlink targets in this layer (limit symlink-bytes-per-layer)",
                        context: .init(path: entry.displayPath))
                }
                if next.linkTarget.first == UInt8(ascii: "/") { stack.removeSubrange(1...) }
                pending += next.linkTarget.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true)
                    .reversed()
            default:
                return nil
            }
        }
        return stack
    }
}

// The in-memory tree as the layer driver's consumer: regular files' data is hashed as it streams by.
extension VirtualTree: LayerConsumer {
    package func consume(_ entry: TarEntry, from reader: TarReader) throws(UnpackError) {
        let content = entry.kind == .regular ? try Self.hashData(reader, size: entry.size) : []
        try apply(entry, content: content)
    }
}

// The in-memory tree as the tree the layer rules remove lower-layer paths from.
extension VirtualTree: LayerTree {
    package func slot(_ name: [UInt8], in parent: Node) -> Slot { Slot(parent: parent.serial, name: name) }

    package func directoryKey(_ name: [UInt8], in parent: Node) -> Int? {
        guard let child = parent.children[name], child.kind == .directory else { return nil }
        return child.serial
    }

    package func openDirectory(_ name: [UInt8], in parent: Node) -> Node? {
        guard let child = parent.children[name], child.kind == .directory else { return nil }
        return child
    }

    package func children(of directory: Node) -> [[UInt8]] { Array(directory.children.keys) }

    package func remove(_ name: [UInt8], in parent: Node, layer: inout Layer) { parent.children[name] = nil }

    package func willChange(_ directory: Node, layer: inout Layer) {}
}

extension VirtualTree {
    /// SHA-256 of the current entry's data; the holes of a sparse file count as zeros up to `size`.
    static func hashData(_ reader: TarReader, size: Int64) throws(UnpackError) -> [UInt8] {
        var hasher = SHA256()
        var position: Int64 = 0
        let zeros = [UInt8](repeating: 0, count: 65536)
        func zeroFill(to end: Int64) {
            while position < end {
                let n = Int(min(Int64(zeros.count), end - position))
                zeros.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                position += Int64(n)
            }
        }
        try reader.readData { (block, offset) throws(UnpackError) in
            zeroFill(to: offset)
            hasher.update(bufferPointer: block)
            position = offset + Int64(block.count)
        }
        zeroFill(to: size)
        return Array(hasher.finalize())
    }
}
