/// Builds tar streams in code: ustar headers, with PAX extended headers for long names, long link
/// targets, large sizes and xattrs. Lets tests write any entry, including hostile ones.
package struct TarBuilder: Sendable {
    package enum Kind: Sendable, Equatable {
        case file(content: [UInt8])
        case directory
        case symlink(target: String)
        case hardlink(target: String)
        case characterDevice(major: UInt32, minor: UInt32)
        case blockDevice(major: UInt32, minor: UInt32)
        case fifo
    }

    package struct Entry: Sendable, Equatable {
        /// The name as stored: any bytes, not only UTF-8 (Linux file names are bytes).
        package var pathBytes: [UInt8]
        package var path: String {
            get { String(decoding: pathBytes, as: UTF8.self) }
            set { pathBytes = Array(newValue.utf8) }
        }
        package var kind: Kind
        package var mode: UInt32
        package var uid: Int
        package var gid: Int
        package var mtime: Int
        package var xattrs: [String: [UInt8]]
        /// More pax records, written as given (sparse maps and other crafted headers).
        package var pax: [(key: String, value: String)] = []

        package static func == (a: Entry, b: Entry) -> Bool {
            a.pathBytes == b.pathBytes && a.kind == b.kind && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid
                && a.mtime == b.mtime && a.xattrs == b.xattrs && a.pax.elementsEqual(b.pax, by: { $0 == $1 })
        }

        package init(
            path: String, kind: Kind, mode: UInt32? = nil, uid: Int = 0, gid: Int = 0, mtime: Int = 1_700_000_000,
            xattrs: [String: [UInt8]] = [:]
        ) {
            self.pathBytes = Array(path.utf8)
            self.kind = kind
            self.mode = mode ?? (kind == .directory ? 0o755 : 0o644)
            self.uid = uid
            self.gid = gid
            self.mtime = mtime
            self.xattrs = xattrs
        }
    }

    package private(set) var entries: [Entry] = []

    package init(_ entries: [Entry] = []) {
        self.entries = entries
    }

    package mutating func add(_ entry: Entry) { entries.append(entry) }

    package mutating func file(_ path: String, _ content: String, mode: UInt32 = 0o644, uid: Int = 0, gid: Int = 0) {
        add(Entry(path: path, kind: .file(content: Array(content.utf8)), mode: mode, uid: uid, gid: gid))
    }

    package mutating func directory(_ path: String, mode: UInt32 = 0o755, uid: Int = 0, gid: Int = 0) {
        add(Entry(path: path, kind: .directory, mode: mode, uid: uid, gid: gid))
    }

    package mutating func symlink(_ path: String, to target: String) {
        add(Entry(path: path, kind: .symlink(target: target), mode: 0o777))
    }

    package mutating func hardlink(_ path: String, to target: String) {
        add(Entry(path: path, kind: .hardlink(target: target)))
    }

    /// An empty file named `.wh.NAME` in `directory` (whiteout of NAME).
    package mutating func whiteout(_ path: String) {
        let (dir, name) = Self.split(path)
        add(Entry(path: dir + ".wh." + name, kind: .file(content: [])))
    }

    /// `.wh..wh..opq` in `directory`.
    package mutating func opaque(_ directory: String) {
        let dir = directory.hasSuffix("/") ? directory : directory + "/"
        add(Entry(path: dir + ".wh..wh..opq", kind: .file(content: [])))
    }

    private static func split(_ path: String) -> (String, String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[...slash]), String(path[path.index(after: slash)...]))
    }

    /// The tar stream, ending with the two zero blocks.
    package func bytes() -> [UInt8] {
        var out: [UInt8] = []
        for entry in entries {
            Self.append(entry, to: &out)
        }
        out += [UInt8](repeating: 0, count: 1024)
        return out
    }

    // MARK: - Encoding

    private static func append(_ entry: Entry, to out: inout [UInt8]) {
        var pax: [(String, [UInt8])] = []
        let content: [UInt8]
        var typeflag: UInt8
        var linkname = ""
        var devmajor: UInt32 = 0
        var devminor: UInt32 = 0
        switch entry.kind {
        case .file(let c):
            content = c
            typeflag = UInt8(ascii: "0")
        case .directory:
            content = []
            typeflag = UInt8(ascii: "5")
        case .symlink(let target):
            content = []
            typeflag = UInt8(ascii: "2")
            linkname = target
        case .hardlink(let target):
            content = []
            typeflag = UInt8(ascii: "1")
            linkname = target
        case .characterDevice(let major, let minor):
            content = []
            typeflag = UInt8(ascii: "3")
            devmajor = major
            devminor = minor
        case .blockDevice(let major, let minor):
            content = []
            typeflag = UInt8(ascii: "4")
            devmajor = major
            devminor = minor
        case .fifo:
            content = []
            typeflag = UInt8(ascii: "6")
        }
        var name = entry.pathBytes
        if name.count > 100 {
            pax.append(("path", name))
            name = Array(name.prefix(100))
        }
        if linkname.utf8.count > 100 {
            pax.append(("linkpath", Array(linkname.utf8)))
            linkname = String(decoding: Array(linkname.utf8.prefix(100)), as: UTF8.self)
        }
        for (key, value) in entry.xattrs.sorted(by: { $0.key < $1.key }) {
            pax.append(("SCHILY.xattr." + key, value))
        }
        for (key, value) in entry.pax { pax.append((key, Array(value.utf8))) }
        if !pax.isEmpty {
            var body: [UInt8] = []
            for (key, value) in pax { body += paxRecord(key, value) }
            out += header(
                name: Array("PaxHeaders/".utf8) + name.suffix(80), mode: 0o644, uid: 0, gid: 0, size: body.count,
                mtime: entry.mtime, typeflag: UInt8(ascii: "x"), linkname: "", devmajor: 0, devminor: 0)
            out += padded(body)
        }
        out += header(
            name: name, mode: entry.mode, uid: entry.uid, gid: entry.gid, size: content.count, mtime: entry.mtime,
            typeflag: typeflag, linkname: linkname, devmajor: devmajor, devminor: devminor)
        out += padded(content)
    }

    private static func paxRecord(_ key: String, _ value: [UInt8]) -> [UInt8] {
        // "LEN key=value\n" where LEN counts itself.
        let rest = Array(" \(key)=".utf8) + value + [0x0a]
        var length = rest.count + 1
        while String(length).utf8.count + rest.count != length { length += 1 }
        return Array(String(length).utf8) + rest
    }

    private static func padded(_ bytes: [UInt8]) -> [UInt8] {
        let remainder = bytes.count % 512
        return remainder == 0 ? bytes : bytes + [UInt8](repeating: 0, count: 512 - remainder)
    }

    private static func header(
        name: [UInt8], mode: UInt32, uid: Int, gid: Int, size: Int, mtime: Int, typeflag: UInt8, linkname: String,
        devmajor: UInt32, devminor: UInt32
    ) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], _ offset: Int, _ length: Int) {
            for (i, b) in bytes.prefix(length).enumerated() { h[offset + i] = b }
        }
        func octal(_ value: Int, _ offset: Int, _ length: Int) {
            let digits = String(value, radix: 8)
            let padded = String(repeating: "0", count: max(0, length - 1 - digits.count)) + digits
            put(Array(padded.utf8), offset, length - 1)
        }
        put(name, 0, 100)
        octal(Int(mode & 0o7777), 100, 8)
        octal(uid, 108, 8)
        octal(gid, 116, 8)
        octal(size, 124, 12)
        octal(mtime, 136, 12)
        put([UInt8](repeating: 0x20, count: 8), 148, 8)
        h[156] = typeflag
        put(Array(linkname.utf8), 157, 100)
        put(Array("ustar\u{0}00".utf8), 257, 8)
        put(Array("root".utf8), 265, 32)
        put(Array("root".utf8), 297, 32)
        octal(Int(devmajor), 329, 8)
        octal(Int(devminor), 337, 8)
        let sum = h.reduce(0) { $0 + Int($1) }
        let digits = String(sum, radix: 8)
        put(Array((String(repeating: "0", count: max(0, 6 - digits.count)) + digits).utf8) + [0, 0x20], 148, 8)
        return h
    }
}
