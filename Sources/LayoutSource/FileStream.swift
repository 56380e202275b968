import OCIImage
import UnpackSystem

/// A file read from its current position (a blob of a layout).
package final class FileStream: ByteStream {
    private let fd: OwnedFD

    package init(_ fd: OwnedFD) { self.fd = fd }

    package func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
        do {
            return try fd.read(into: buffer)
        } catch {
            throw error.unpackError("reading \(error.path ?? "a blob") failed")
        }
    }
}
