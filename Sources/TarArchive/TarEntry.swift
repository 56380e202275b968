import Glibc
import OCIImage

/// One tar entry as the applier needs it. Paths and link targets are raw bytes, exactly as in the
/// archive: Linux file names need not be UTF-8.
package struct TarEntry: Sendable {
    package enum Kind: Sendable, Equatable {
        case regular
        case directory
        case symlink
        case hardlink
        case characterDevice
        case blockDevice
        case fifo
        case socket
    }

    package var path: [UInt8]
    package var kind: Kind
    /// Symlink or hardlink target.
    package var linkTarget: [UInt8]
    /// Permission bits including setuid, setgid and sticky (07777).
    package var mode: UInt32
    package var uid: Int64
    package var gid: Int64
    package var size: Int64
    package var mtime: timespec
    package var atime: timespec?
    package var deviceMajor: UInt32
    package var deviceMinor: UInt32
    package var xattrs: [(name: String, value: [UInt8])]

    /// The path for messages.
    package var displayPath: String { DisplayText.escaping(path) }
}

extension TarEntry {
    /// An entry with `path` and `kind`, owned by 0:0, every other field empty (tests, and
    /// consumers that make entries of their own).
    package init(path: [UInt8], kind: Kind, mode: UInt32 = 0o644) {
        self.path = path
        self.kind = kind
        linkTarget = []
        self.mode = mode
        uid = 0
        gid = 0
        size = 0
        mtime = timespec()
        atime = nil
        deviceMajor = 0
        deviceMinor = 0
        xattrs = []
    }
}
