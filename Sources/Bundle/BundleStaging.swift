import FoundationEssentials
import Glibc
import LayerApply
import OCIImage

/// A bundle under construction: a hidden staging directory beside the target, published by one
/// rename only when everything succeeded, and removed on any failure.
///
/// Staging directories are named `.NAME.oci-unpack-PID-RANDOM`; those left by a process that no
/// longer runs (killed with SIGKILL) are removed by the next run for the same target.
public final class BundleStaging {
    public let target: String
    public let staging: String
    public var rootfs: String { staging + "/rootfs" }
    private var published = false
    private let force: Bool

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

    /// Checks the target and creates the staging directory with an empty `rootfs/`.
    public init(target: String, force: Bool) throws(UnpackError) {
        let (trimmed, parent, name) = Self.split(target)
        self.target = trimmed
        self.force = force
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
        if case .success(let st) = fileStatus(trimmed) {
            guard st.isDirectory else {
                throw UnpackError(
                    .bundleExists, "bundle \(trimmed) exists and is not a directory", context: .init(path: trimmed))
            }
            let contents = (try? FileManager.default.contentsOfDirectory(atPath: trimmed)) ?? []
            if !contents.isEmpty && !force {
                throw UnpackError(
                    .bundleExists, "bundle \(trimmed) exists and is not empty (use --force to replace it)",
                    context: .init(path: trimmed))
            }
        }
        Self.removeStale(parent: parent, name: name)
        let random = String(UInt64.random(in: 0..<UInt64.max), radix: 36)
        staging = "\(parent)/.\(name).oci-unpack-\(getpid())-\(random)"
        guard mkdir(staging, 0o700) == 0 else {
            throw SystemError(call: "mkdir", errno: errno, path: staging)
                .unpackError("cannot create staging directory \(staging)", context: .init(path: staging))
        }
        guard mkdir(staging + "/rootfs", 0o755) == 0 else {
            let error = SystemError(call: "mkdir", errno: errno, path: staging + "/rootfs")
            discard()
            throw error.unpackError("cannot create \(staging)/rootfs", context: .init(path: staging))
        }
    }

    /// Writes a file at the top of the bundle (`config.json`), mode 0644.
    public func write(_ name: String, _ bytes: [UInt8]) throws(UnpackError) {
        let path = "\(staging)/\(name)"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw SystemError(call: "open", errno: errno, path: path).unpackError("cannot create \(path)")
        }
        defer { close(fd) }
        try SystemError.mapping({ () throws(SystemError) in try writeAll(fd, bytes, path: path) }) {
            $0.unpackError("cannot write \(path)")
        }
    }

    /// Moves the staging directory to the target: a rename when there is none, an atomic exchange
    /// (then removal of the old one) when it exists.
    public func publish() throws(UnpackError) {
        if rename(staging, target) == 0 {
            published = true
            return
        }
        let renameError = errno
        if (renameError == EEXIST || renameError == ENOTEMPTY) && !force {
            // Filled by someone else (another run) since we checked: never replace it unasked.
            throw UnpackError(
                .bundleExists, "bundle \(target) was filled while unpacking (use --force to replace it)",
                context: .init(path: target))
        }
        guard renameError == EEXIST || renameError == ENOTEMPTY else {
            throw SystemError(call: "rename", errno: renameError, path: target)
                .unpackError("cannot move the bundle into \(target)", context: .init(path: target))
        }
        do {
            try exchangePaths(staging, target)
        } catch {
            throw error.unpackError("cannot replace bundle \(target)", context: .init(path: target))
        }
        published = true
        // The staging path now holds the old bundle.
        try? removeDirectoryTree(staging)
    }

    /// Removes the staging directory (after a failure).
    public func discard() {
        guard !published else { return }
        try? removeDirectoryTree(staging)
    }

    deinit { discard() }

    private static func removeStale(parent: String, name: String) {
        let prefix = ".\(name).oci-unpack-"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return }
        for entry in entries where entry.hasPrefix(prefix) {
            let rest = entry.dropFirst(prefix.count)
            guard let pid = rest.split(separator: "-").first.flatMap({ Int32($0) }) else { continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH {
                try? removeDirectoryTree("\(parent)/\(entry)")
            }
        }
    }
}
