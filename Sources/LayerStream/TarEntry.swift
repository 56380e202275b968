import Glibc
import OCIImage

/// One tar entry as the applier needs it. Paths and link targets are raw bytes, exactly as in the
/// archive: Linux file names need not be UTF-8.
public struct TarEntry: Sendable {
    public enum Kind: Sendable, Equatable {
        case regular
        case directory
        case symlink
        case hardlink
        case characterDevice
        case blockDevice
        case fifo
        case socket
    }

    public var path: [UInt8]
    public var kind: Kind
    /// Symlink or hardlink target.
    public var linkTarget: [UInt8]
    /// Permission bits including setuid, setgid and sticky (07777).
    public var mode: UInt32
    public var uid: Int64
    public var gid: Int64
    public var size: Int64
    public var mtime: timespec
    public var atime: timespec?
    public var deviceMajor: UInt32
    public var deviceMinor: UInt32
    public var xattrs: [(name: String, value: [UInt8])]

    /// The path for messages.
    public var displayPath: String { DisplayText.escaping(path) }
}
