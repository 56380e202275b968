import Glibc
import OCIImage
import TarArchive
import UnpackSystem

/// An uncompressed tar file read in place: its members are located once (libarchive reads the
/// headers and skips the data) and each is then read with pread from its offset, as often as
/// needed, never extracted.
///
/// Compressed archives are refused: finding a member in one means decompressing everything before
/// it, once per member. `skopeo copy … oci-archive:` and `docker save` write uncompressed tars.
package final class ArchiveFile: Sendable {
    /// Where a regular file's data lies in the archive.
    package struct Member: Sendable {
        package let offset: Int64
        package let size: Int64
    }

    package let path: String
    let fd: OwnedFD
    /// Regular files by name (`./` and `/` prefixes removed).
    package let members: [String: Member]
    /// Symlinks by name, to their targets (docker-archive's `ID/layer.tar -> ../HEX.tar`).
    let links: [String: String]

    /// Members located at most: bounds the index a hostile archive can make.
    static let maxMembers = 1_000_000

    package init(path: String) throws(UnpackError) {
        self.path = path
        let context = UnpackError.Context(path: path)
        let opened: OwnedFD
        do throws(SystemError) {
            opened = try OwnedFD(retryingSyscall("open", path: path) { open(path, O_RDONLY | O_CLOEXEC) })
        } catch {
            throw error.unpackError("the archive \(path) cannot be opened", context: context)
        }
        fd = opened
        let st = try SystemError.mapping({ () throws(SystemError) in try opened.status() }) {
            $0.unpackError("the archive \(path) cannot be read", context: context)
        }
        guard st.isRegularFile else {
            throw UnpackError(.invalidArgument, "\(path) is not a file (an archive is a tar file)", context: context)
        }
        let size = Int64(st.st_size)
        var magic = [UInt8](repeating: 0, count: 6)
        let got = magic.withUnsafeMutableBytes { pread(opened.rawValue, $0.baseAddress, 6, 0) }
        if got == 6, let compression = Self.compression(of: magic) {
            throw UnpackError(
                .invalidImage,
                "the archive \(path) is \(compression)-compressed: archives are read in place, which needs an uncompressed tar (decompress it first)",
                context: context)
        }
        // Headers only: the data of each member is skipped, not read.
        var found: [(name: String, size: Int64, header: Int64, nextHeader: Int64)] = []
        var links: [String: String] = [:]
        var count = 0
        do throws(UnpackError) {
            let reader = try TarReader(upstream: RangeStream(opened, offset: 0, length: size, name: path))
            var pending: (name: String, size: Int64, header: Int64)?
            while let entry = try reader.next() {
                if entry.kind == .symlink {
                    links[Self.memberName(entry.path)] = String(decoding: entry.linkTarget, as: UTF8.self)
                }
                count += 1
                guard count <= Self.maxMembers else {
                    throw UnpackError(
                        .limitExceeded, "the archive \(path) holds more than \(Self.maxMembers) members",
                        context: context)
                }
                if let last = pending { found.append((last.name, last.size, last.header, reader.headerPosition)) }
                pending =
                    entry.kind == .regular ? (Self.memberName(entry.path), entry.size, reader.headerPosition) : nil
            }
            if let last = pending { found.append((last.name, last.size, last.header, reader.headerPosition)) }
        } catch {
            if error.code == .limitExceeded { throw error }
            throw UnpackError(
                .invalidImage, "the archive \(path) is not a valid tar file: \(error.message)", context: context)
        }
        // A member's data ends, padded to 512 bytes, where the next entry's headers start (the
        // next regular file's, or another entry's: only regular files are kept, so the next
        // header of any kind is needed).
        var members: [String: Member] = [:]
        for member in found {
            let dataStart = member.nextHeader - (member.size + 511) / 512 * 512
            guard dataStart > member.header, dataStart + member.size <= size else {
                throw UnpackError(
                    .invalidImage, "the archive \(path): member \(member.name) does not fit where its headers say",
                    context: context)
            }
            guard members[member.name] == nil else {
                // tar keeps the last copy, some readers the first: neither is guessed.
                throw UnpackError(
                    .invalidImage, "the archive \(path) holds \(member.name) twice", context: context)
            }
            members[member.name] = Member(offset: dataStart, size: member.size)
        }
        self.members = members
        self.links = links
    }

    /// The regular file `name` names, following the archive's own symlinks (relative to the
    /// link's directory, at most eight, never above the archive's top).
    package func member(named name: String) -> (name: String, member: Member)? {
        var current = Self.memberName(Array(name.utf8))
        for _ in 0..<8 {
            if let member = members[current] { return (current, member) }
            guard let target = links[current] else { return nil }
            var parts = target.hasPrefix("/") ? [] : current.split(separator: "/").dropLast().map(String.init)
            for part in target.split(separator: "/") {
                if part == "." { continue }
                if part == ".." {
                    guard !parts.isEmpty else { return nil }
                    parts.removeLast()
                } else {
                    parts.append(String(part))
                }
            }
            current = parts.joined(separator: "/")
        }
        return nil
    }

    /// A stream over one member's data.
    package func stream(_ member: Member) -> RangeStream {
        RangeStream(fd, offset: member.offset, length: member.size, name: path)
    }

    /// One member's data, at most `limit` bytes.
    package func read(_ member: Member, limit: Int) throws(UnpackError) -> [UInt8] {
        try stream(member).readAll(limit: limit)
    }

    /// A member's name in one canonical spelling, so that spellings of one path are one name
    /// (and a path stored twice is refused as such, whatever the order members are looked at in):
    /// empty and `.` components dropped (`./blobs//sha256/X` is `blobs/sha256/X`), `..` taken
    /// lexically and never above the archive's top.
    static func memberName(_ raw: [UInt8]) -> String {
        var parts: [ArraySlice<UInt8>] = []
        for part in raw.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if part.elementsEqual(".".utf8) { continue }
            if part.elementsEqual("..".utf8) {
                _ = parts.popLast()
                continue
            }
            parts.append(part)
        }
        return String(decoding: Array(parts.joined(separator: [UInt8(ascii: "/")])), as: UTF8.self)
    }

    private static func compression(of magic: [UInt8]) -> String? {
        if magic.starts(with: [0x1f, 0x8b]) { return "gzip" }
        if magic.starts(with: [0x28, 0xb5, 0x2f, 0xfd]) { return "zstd" }
        if magic.starts(with: Array("BZh".utf8)) { return "bzip2" }
        if magic.starts(with: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) { return "xz" }
        return nil
    }
}

/// A range of a file read with pread: a member of an archive.
package final class RangeStream: SkippingByteStream {
    private let fd: OwnedFD
    private var position: Int64
    private let end: Int64
    private let name: String

    package init(_ fd: OwnedFD, offset: Int64, length: Int64, name: String) {
        self.fd = fd
        position = offset
        end = offset + length
        self.name = name
    }

    package func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
        let wanted = Int(min(Int64(buffer.count), end - position))
        guard wanted > 0 else { return 0 }
        while true {
            let n = pread(fd.rawValue, buffer.baseAddress, wanted, off_t(position))
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else {
                throw SystemError(call: "pread", errno: errno, path: name).unpackError("reading \(name) failed")
            }
            guard n > 0 else {
                throw UnpackError(.corruptLayer, "\(name) ends before the member being read (it shrank?)")
            }
            position += Int64(n)
            return n
        }
    }

    package func skip(_ count: Int64) throws(UnpackError) -> Int64 {
        let n = max(0, min(count, end - position))
        position += n
        return n
    }
}
