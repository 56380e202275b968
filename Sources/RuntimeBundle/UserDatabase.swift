import OCIImage

/// `/etc/passwd` and `/etc/group` of the root filesystem, parsed.
package struct UserDatabase: Sendable {
    package struct User: Sendable, Equatable {
        package let name: String
        package let uid: UInt32
        package let gid: UInt32
        package let home: String
    }

    package struct Group: Sendable, Equatable {
        package let name: String
        package let gid: UInt32
        package let members: [String]
    }

    package let users: [User]
    package let groups: [Group]

    /// Parses the files' contents (either may be absent). Malformed lines are skipped, as libc does.
    package init(passwd: [UInt8]?, group: [UInt8]?) {
        func lines(_ bytes: [UInt8]?) -> [[Substring]] {
            guard let bytes else { return [] }
            return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
                let trimmed = line.trimmingPrefix(while: { $0 == " " || $0 == "\t" })
                if trimmed.isEmpty || trimmed.hasPrefix("#") { return nil }
                return line.split(separator: ":", omittingEmptySubsequences: false)
            }
        }
        users = lines(passwd).compactMap { f in
            guard f.count >= 7, !f[0].isEmpty, let uid = UInt32(f[2]), let gid = UInt32(f[3]) else { return nil }
            return User(name: String(f[0]), uid: uid, gid: gid, home: String(f[5]))
        }
        groups = lines(group).compactMap { f in
            guard f.count >= 4, !f[0].isEmpty, let gid = UInt32(f[2]) else { return nil }
            let members = f[3].split(separator: ",").map { String($0.trimmingSpaces) }.filter { !$0.isEmpty }
            return Group(name: String(f[0]), gid: gid, members: members)
        }
    }

    package func user(named name: String) -> User? { users.first { $0.name == name } }
    package func user(uid: UInt32) -> User? { users.first { $0.uid == uid } }
    package func group(named name: String) -> Group? { groups.first { $0.name == name } }

    /// What `User` of an image config means here.
    package struct Resolved: Sendable, Equatable {
        package let uid: UInt32
        package let gid: UInt32
        package let additionalGids: [UInt32]
        /// The passwd entry's home directory, when the user has one.
        package let home: String?

        package init(uid: UInt32, gid: UInt32, additionalGids: [UInt32], home: String?) {
            self.uid = uid
            self.gid = gid
            self.additionalGids = additionalGids
            self.home = home
        }
    }

    /// Where a user specification came from: the image config's `User`, or `--user`. Errors name
    /// it, and a malformed one is the image's fault (invalidImage) or the caller's
    /// (invalidArgument).
    package enum Source: Sendable {
        case image
        case option

        var name: String { self == .image ? "the image's User" : "--user" }
        var malformedCode: UnpackError.Code { self == .image ? .invalidImage : .invalidArgument }
    }

    /// A numeric id: decimal, below 2^32 - 1 ((uid_t)-1 means "no change" to chown and is no id).
    static func numericID(_ text: String) -> UInt32? {
        guard let value = UInt32(text), value != UInt32.max else { return nil }
        return value
    }

    /// Checks the form of a user specification without a user database: `user[:group]` with
    /// neither part empty when the colon is there, and numeric ids in range.
    package static func checkSyntax(_ spec: String, from source: Source) throws(UnpackError) {
        let parts = spec.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let userPart = parts[0]
        let groupPart = parts.count == 2 ? parts[1] : nil
        let malformed = UnpackError(
            source.malformedCode,
            "invalid user \"\(spec.truncatedForMessage)\" in \(source.name): expected uid, name, uid:gid or name:group")
        if groupPart?.isEmpty == true || (userPart.isEmpty && groupPart != nil) { throw malformed }
        for part in [userPart, groupPart ?? ""] where !part.isEmpty && part.allSatisfy(\.isASCIIDigitCharacter) {
            guard numericID(part) != nil else {
                throw UnpackError(
                    source.malformedCode,
                    "invalid user \"\(spec.truncatedForMessage)\" in \(source.name): id \(part.truncatedForMessage) is out of range (0 to 4294967294)"
                )
            }
        }
    }

    /// Resolves `uid`, `name`, `uid:gid`, `name:group`, `uid:group` or `name:gid` (empty: root).
    /// Names must exist; a numeric uid need not. Supplementary groups come from `/etc/group` only
    /// when no group was given.
    package func resolve(_ spec: String, from source: Source = .image) throws(UnpackError) -> Resolved {
        try Self.checkSyntax(spec, from: source)
        let parts = spec.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let userPart = parts[0]
        let groupPart = parts.count == 2 ? parts[1] : nil
        let entry: User?
        let uid: UInt32
        if userPart.isEmpty {
            uid = 0
            entry = user(uid: 0)
        } else if let numeric = Self.numericID(userPart) {
            uid = numeric
            entry = user(uid: numeric)
        } else {
            guard let named = user(named: userPart) else {
                throw UnpackError(
                    .notFound,
                    "user \"\(userPart.truncatedForMessage)\" (from \(source.name) \"\(spec.truncatedForMessage)\") is not in the image's /etc/passwd",
                    context: .init(path: "/etc/passwd"))
            }
            uid = named.uid
            entry = named
        }
        let gid: UInt32
        var additional: [UInt32] = []
        if let groupPart {
            if let numeric = Self.numericID(groupPart) {
                gid = numeric
            } else if let named = group(named: groupPart) {
                gid = named.gid
            } else {
                throw UnpackError(
                    .notFound,
                    "group \"\(groupPart.truncatedForMessage)\" (from \(source.name) \"\(spec.truncatedForMessage)\") is not in the image's /etc/group",
                    context: .init(path: "/etc/group"))
            }
        } else {
            gid = entry?.gid ?? 0
            if let name = entry?.name {
                for group in groups where group.members.contains(name) && group.gid != gid {
                    if !additional.contains(group.gid) { additional.append(group.gid) }
                }
            }
        }
        return Resolved(uid: uid, gid: gid, additionalGids: additional, home: entry?.home)
    }
}

extension Character {
    fileprivate var isASCIIDigitCharacter: Bool { isASCII && isNumber }
}
