internal import CArchive
import Glibc
import OCIImage

/// Reads tar entries (ustar, pax, GNU) with libarchive from an uncompressed `ByteStream`.
///
/// Only the tar formats are enabled and no filters: decompression happened before. Every libarchive
/// status is checked: FATAL (and a data read that stops short) is an error, WARN is reported
/// through `onWarning`.
package final class TarReader {
    private let archive: OpaquePointer
    private let context: ReadContext
    private var finished = false
    private let onWarning: (String) -> Void

    package init(
        upstream: any ByteStream, bufferSize: Int = 256 * 1024, onWarning: @escaping (String) -> Void = { _ in }
    )
        throws(UnpackError)
    {
        guard let archive = archive_read_new() else {
            throw UnpackError(.internal, "archive_read_new failed")
        }
        self.archive = archive
        self.onWarning = onWarning
        context = ReadContext(upstream: upstream, bufferSize: bufferSize)
        archive_read_support_format_tar(archive)
        // A seekable upstream (an archive file) lets libarchive skip entry data without reading it.
        let rc = archive_read_open2(
            archive, Unmanaged.passUnretained(context).toOpaque(), nil, tarReadCallback,
            context.skipper == nil ? nil : tarSkipCallback, nil)
        if rc != ARCHIVE_OK && context.error == nil && context.delivered == 0 {
            // A zero-byte layer is an empty tar (Go's archive/tar reads it so, and its diff_id is
            // the digest of no bytes); libarchive finds no format in it.
            finished = true
            return
        }
        guard rc == ARCHIVE_OK else {
            throw failure("cannot start reading the tar stream")
        }
    }

    deinit {
        archive_read_free(archive)
    }

    /// Where the current entry's headers start in the stream (after `next()` returned nil: where
    /// the end-of-archive marker starts). An entry's data ends, padded to 512 bytes, where the next
    /// entry's headers start.
    package var headerPosition: Int64 { archive_read_header_position(archive) }

    /// The next entry, or `nil` after the end-of-archive marker.
    package func next() throws(UnpackError) -> TarEntry? {
        guard !finished else { return nil }
        return try Self.inUTF8Locale { () throws(UnpackError) -> TarEntry? in
            var entryPointer: OpaquePointer?
            let rc = archive_read_next_header(archive, &entryPointer)
            switch rc {
            case ARCHIVE_EOF:
                finished = true
                // libarchive clears a read error met while peeking past the end marker: ours
                // (a digest, a corrupt stream) is still stashed, and wins.
                if let stashed = context.error { throw stashed }
                try checkEndMarker()
                return nil
            case ARCHIVE_OK:
                break
            case ARCHIVE_WARN:
                onWarning(errorString ?? "libarchive warning")
            default:
                throw failure("the tar stream is corrupt")
            }
            guard let entry = entryPointer else {
                throw UnpackError(.corruptLayer, "libarchive returned no entry")
            }
            return try convert(entry)
        }
    }

    /// The end-of-archive marker is two zero blocks. libarchive stops at the first one and consumes
    /// the second only when it is zero too, then reports the end; Go's archive/tar (docker,
    /// containerd, every Go scanner) refuses a stream whose second block is not zero. Entries after
    /// a single zero block would be invisible here and real there: such a stream is refused. A
    /// single zero block that ends the stream is accepted by both.
    private func checkEndMarker() throws(UnpackError) {
        let markerStart = archive_read_header_position(archive)
        let consumed = archive_filter_bytes(archive, 0)
        guard markerStart >= 0, consumed - markerStart == 512 else { return }
        var more = context.delivered > consumed
        if !more, let lender = context.lender {
            more = try lender.borrow().count > 0
        } else if !more {
            more = try context.upstream.read(into: context.buffer) > 0
        }
        if more {
            throw UnpackError(
                .corruptLayer,
                "the tar stream continues after a single zero block at byte \(markerStart) (an end-of-archive marker is two zero blocks; Go's archive/tar refuses this stream, and the entries after it would be hidden here)"
            )
        }
    }

    /// Streams the current entry's data to `body` as (bytes, offset) blocks; gaps between blocks
    /// are holes of a sparse file.
    package func readData(_ body: (UnsafeRawBufferPointer, Int64) throws(UnpackError) -> Void) throws(UnpackError) {
        while true {
            var buffer: UnsafeRawPointer?
            var size = 0
            var offset: la_int64_t = 0
            let rc = archive_read_data_block(archive, &buffer, &size, &offset)
            switch rc {
            case ARCHIVE_EOF:
                return
            case ARCHIVE_OK, ARCHIVE_WARN:
                if rc == ARCHIVE_WARN { onWarning(errorString ?? "libarchive warning") }
                if size > 0, let buffer {
                    try body(UnsafeRawBufferPointer(start: buffer, count: size), offset)
                }
            default:
                throw failure("reading entry data failed (truncated or corrupt tar stream)")
            }
        }
    }

    /// libarchive converts pax's UTF-8 names to the current locale's charset: under the C locale a
    /// non-ASCII name yields a warning and no locale name. Run its calls under C.UTF-8 on this thread
    /// only (uselocale), leaving the process locale alone.
    private static func inUTF8Locale<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        guard let locale = utf8Locale.value else { return try body() }
        let previous = uselocale(locale)
        defer { uselocale(previous) }
        return try body()
    }

    private static let utf8Locale = LocaleHandle()

    private var errorString: String? {
        archive_error_string(archive).map { String(cString: $0) }
    }

    /// The stashed error of our read callback if there is one (a digest mismatch, a corrupt gzip
    /// stream), else libarchive's own message.
    private func failure(_ what: String) -> UnpackError {
        if let stashed = context.error { return stashed }
        return UnpackError(.corruptLayer, "\(what): \(errorString ?? "unknown libarchive error")")
    }

    private func convert(_ entry: OpaquePointer) throws(UnpackError) -> TarEntry {
        // The names as libarchive stored them: a ustar name's raw bytes, a pax name converted from
        // UTF-8 to this thread's C.UTF-8 locale (unchanged). The *_utf8 getters would convert
        // them again on every call (mbrtowc, and an iconv_open per entry): a fifth of the per-entry
        // time on small files. They are the fallback when no locale form was stored.
        guard let path = bytes(archive_entry_pathname(entry)) ?? bytes(archive_entry_pathname_utf8(entry)) else {
            throw UnpackError(.corruptLayer, "a tar entry has no path name")
        }
        let hardlink = bytes(archive_entry_hardlink(entry)) ?? bytes(archive_entry_hardlink_utf8(entry))
        let kind: TarEntry.Kind
        var target: [UInt8] = []
        if let hardlink {
            kind = .hardlink
            target = hardlink
        } else {
            switch archive_entry_filetype(entry) {
            case S_IFREG: kind = .regular
            case S_IFDIR: kind = .directory
            case S_IFLNK:
                kind = .symlink
                target = bytes(archive_entry_symlink(entry)) ?? bytes(archive_entry_symlink_utf8(entry)) ?? []
            case S_IFCHR: kind = .characterDevice
            case S_IFBLK: kind = .blockDevice
            case S_IFIFO: kind = .fifo
            case S_IFSOCK: kind = .socket
            default:
                throw UnpackError(
                    .corruptLayer, "tar entry \(DisplayText.escaping(path)) has an unknown file type",
                    context: .init(path: DisplayText.escaping(path)))
            }
        }
        var xattrs: [(String, [UInt8])] = []
        if archive_entry_xattr_reset(entry) > 0 {
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            while archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK {
                guard let name else { continue }
                let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                xattrs.append((String(cString: name), bytes))
            }
        }
        return TarEntry(
            path: path, kind: kind, linkTarget: target, mode: UInt32(archive_entry_perm(entry)) & 0o7777,
            uid: archive_entry_uid(entry), gid: archive_entry_gid(entry), size: archive_entry_size(entry),
            mtime: timespec(tv_sec: archive_entry_mtime(entry), tv_nsec: archive_entry_mtime_nsec(entry)),
            atime: archive_entry_atime_is_set(entry) != 0
                ? timespec(tv_sec: archive_entry_atime(entry), tv_nsec: archive_entry_atime_nsec(entry)) : nil,
            deviceMajor: UInt32(truncatingIfNeeded: archive_entry_rdevmajor(entry)),
            deviceMinor: UInt32(truncatingIfNeeded: archive_entry_rdevminor(entry)), xattrs: xattrs)
    }

    private func bytes(_ pointer: UnsafePointer<CChar>?) -> [UInt8]? {
        guard let pointer else { return nil }
        let length = strlen(pointer)
        return pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
            Array(UnsafeBufferPointer(start: $0, count: length))
        }
    }
}

/// What libarchive's read callback needs: the upstream stream, one reused buffer, and the Swift
/// error that stopped it (rethrown after the libarchive call returns).
private final class ReadContext {
    let upstream: any ByteStream
    /// The upstream, when it lends its buffers: libarchive then reads them in place (a buffer
    /// returned by the read callback need only stay valid until the next call, as a lent one does).
    let lender: (any LendingByteStream)?
    /// The upstream, when it can skip bytes without reading them.
    let skipper: (any SkippingByteStream)?
    let buffer: UnsafeMutableRawBufferPointer
    var error: UnpackError?
    /// Bytes handed to libarchive so far.
    var delivered: Int64 = 0

    init(upstream: any ByteStream, bufferSize: Int) {
        self.upstream = upstream
        lender = upstream as? any LendingByteStream
        skipper = upstream as? any SkippingByteStream
        buffer = .allocate(byteCount: lender == nil ? bufferSize : 0, alignment: 16)
    }

    deinit { buffer.deallocate() }
}

private func tarReadCallback(
    _ archive: OpaquePointer?, _ clientData: UnsafeMutableRawPointer?,
    _ out: UnsafeMutablePointer<UnsafeRawPointer?>?
) -> la_ssize_t {
    guard let clientData else { return -1 }
    let context = Unmanaged<ReadContext>.fromOpaque(clientData).takeUnretainedValue()
    do {
        if let lender = context.lender {
            let chunk = try lender.borrow()
            out?.pointee = chunk.baseAddress
            context.delivered += Int64(chunk.count)
            return la_ssize_t(chunk.count)
        }
        let n = try context.upstream.read(into: context.buffer)
        out?.pointee = UnsafeRawPointer(context.buffer.baseAddress)
        context.delivered += Int64(n)
        return la_ssize_t(n)
    } catch {
        context.error = error
        return -1
    }
}

private func tarSkipCallback(
    _ archive: OpaquePointer?, _ clientData: UnsafeMutableRawPointer?, _ request: la_int64_t
) -> la_int64_t {
    guard let clientData else { return 0 }
    let context = Unmanaged<ReadContext>.fromOpaque(clientData).takeUnretainedValue()
    guard let skipper = context.skipper else { return 0 }
    do {
        let skipped = try skipper.skip(Int64(request))
        context.delivered += skipped
        return la_int64_t(skipped)
    } catch {
        context.error = error
        return -1
    }
}

/// A C.UTF-8 locale object, created once and kept for the life of the process.
private final class LocaleHandle: Sendable {
    // A locale_t is immutable once made; sharing it across threads is what uselocale expects.
    nonisolated(unsafe) let value: locale_t?

    init() {
        value = newlocale(1 << LC_CTYPE, "C.UTF-8", nil)
    }
}
