import FoundationEssentials
import OCIImage

/// A signature policy, `containers-policy.json(5)` as containers/image reads it (podman, CRI-O,
/// skopeo, buildah): `default` requirements, and per transport (`docker`, `oci`, `oci-archive`,
/// `docker-archive`, …) per-scope requirements, of which the most specific scope that names the
/// image applies. Read with the strict JSON reader and the same strictness as containers/image
/// (no unknown or repeated key, no empty list of requirements), so a file never means one thing
/// here and another there.
package struct Policy: Sendable {
    /// Where the policy was read from.
    package let file: String
    package let defaultRequirements: [Requirement]
    /// Transport → scope → requirements.
    package let transports: [String: [String: [Requirement]]]

    /// One requirement of a list, with where it is in the file.
    package struct Requirement: Sendable {
        package let kind: Kind
        /// `default[0]`, `transports.docker["example.com/ns"][1]`.
        package let place: String
    }

    package enum Kind: Sendable {
        case insecureAcceptAnything
        case reject
        /// OpenPGP "simple signing" signatures by one of the keys (only `keyType` `GPGKeys` is
        /// implemented, as in containers/image).
        case signedBy(keyType: String, keys: Keys, identity: IdentityRule)
        /// Sigstore signatures by one of the public keys; `unsupported` names what the
        /// requirement asks for that oci-unpack does not check (Fulcio, Rekor, a PKI), which
        /// makes it refuse every image.
        case sigstoreSigned(keys: Keys, unsupported: String?, identity: IdentityRule)
        /// Parsed, and never satisfied (containers/image: "not implemented yet").
        case signedBaseLayer
    }

    /// Where a requirement's keys are: files (read when a signature is checked), or inline.
    package enum Keys: Sendable {
        case paths([String])
        case data([[UInt8]])
    }

    /// How the identity a signature claims must relate to the image (`signedIdentity`).
    package enum IdentityRule: Sendable, Equatable {
        case matchExact
        case matchRepoDigestOrExact
        case matchRepository
        case exactReference(DockerIdentity)
        case exactRepository(DockerIdentity)
        case remapIdentity(prefix: String, signedPrefix: String)
    }

    /// The transports whose scopes are checked when read (containers/image checks those it has;
    /// any other name is kept unchecked, and never used).
    static let pathTransports: Set<String> = ["oci", "oci-archive", "dir", "sif"]

    /// Reads a policy file's bytes.
    package init(parsing bytes: [UInt8], file: String) throws(UnpackError) {
        self.file = file
        let value: JSONValue
        do throws(JSONValue.SyntaxError) {
            value = try JSONValue(parsing: bytes, maxDepth: 32)
        } catch {
            let (line, column) = Self.lineAndColumn(bytes, offset: error.offset)
            throw UnpackError(
                .invalidArgument,
                "policy \(file):\(line):\(column): not strict JSON (RFC 8259, no repeated keys): \(error.reason)",
                context: .init(path: file))
        }
        let reader = Reader(file: file)
        let top = try reader.object(value, at: "the top level", known: ["default", "transports"])
        guard let defaults = top["default"] else {
            throw reader.problem("the top level", "has no \"default\" requirements")
        }
        defaultRequirements = try reader.requirements(defaults, at: "default")
        var transports: [String: [String: [Requirement]]] = [:]
        if let value = top["transports"] {
            let byName = try reader.object(value, at: "transports", known: nil)
            for (name, scopesValue) in byName.sorted(by: { $0.key < $1.key }) {
                let place = "transports.\(Reader.quotedIfNeeded(name))"
                let scopes = try reader.object(scopesValue, at: place, known: nil)
                var list: [String: [Requirement]] = [:]
                for (scope, requirements) in scopes.sorted(by: { $0.key < $1.key }) {
                    let here = "\(place)[\(Reader.quoted(scope))]"
                    try Self.checkScope(scope, transport: name, reader: reader, at: here)
                    list[scope] = try reader.requirements(requirements, at: here)
                }
                transports[name] = list
            }
        }
        self.transports = transports
    }

    /// The requirements that apply to an image: those of its transport's most specific scope
    /// (its identity, then each namespace in order, then the transport's `""`), else `default`;
    /// and the name of the list (for messages: `default`, `transports.docker["host/ns"]`).
    package func requirements(for subject: PolicySubject) -> (list: [Requirement], scope: String) {
        if let scopes = transports[subject.transport] {
            for key in [subject.identity] + subject.namespaces + [""] {
                if let list = scopes[key] {
                    return (list, "transports.\(Reader.quotedIfNeeded(subject.transport))[\(Reader.quoted(key))]")
                }
            }
        }
        return (defaultRequirements, "default")
    }

    /// containers/image's checks of a scope: any string for `docker`; a clean absolute path other
    /// than `/` for the path transports; only `""` for `docker-archive` and `tarball`.
    static func checkScope(_ scope: String, transport: String, reader: Reader, at place: String) throws(UnpackError) {
        guard !scope.isEmpty else { return }
        if pathTransports.contains(transport) {
            guard scope.hasPrefix("/"), scope != "/", Self.isCleanPath(scope) else {
                throw reader.problem(
                    place,
                    "is not a scope of \(transport): a clean absolute path other than / (the transport's default is \"\")"
                )
            }
        } else if transport == "docker-archive" || transport == "tarball" {
            throw reader.problem(place, "is not a scope of \(transport), which supports only the default scope \"\"")
        }
    }

    static func isCleanPath(_ path: String) -> Bool {
        guard !path.hasSuffix("/") else { return false }
        return !path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().contains {
            $0.isEmpty || $0 == "." || $0 == ".."
        }
    }

    static func lineAndColumn(_ bytes: [UInt8], offset: Int) -> (Int, Int) {
        var line = 1
        var column = 1
        for byte in bytes.prefix(offset) {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return (line, column)
    }
}

/// Reads the policy's objects, naming the place of every problem.
struct Reader {
    let file: String

    func problem(_ place: String, _ message: String) -> UnpackError {
        UnpackError(.invalidArgument, "policy \(file): \(place) \(message)", context: .init(path: file))
    }

    static func quoted(_ key: String) -> String {
        var out = "\""
        for c in key.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out.unicodeScalars.append(c)
            }
        }
        return DisplayText.escaping(out + "\"")
    }

    static func quotedIfNeeded(_ key: String) -> String {
        key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) && !key.isEmpty
            ? key : quoted(key)
    }

    /// An object, whose keys must all be `known` (nil: any key).
    func object(_ value: JSONValue, at place: String, known: Set<String>?) throws(UnpackError) -> [String: JSONValue] {
        guard case .object(let members) = value else { throw problem(place, "is not a JSON object") }
        if let known {
            for key in members.keys.sorted() where !known.contains(key) {
                throw problem(place, "has an unknown key \(Self.quoted(key))")
            }
        }
        return members
    }

    func string(_ value: JSONValue?, at place: String) throws(UnpackError) -> String? {
        guard let value else { return nil }
        guard case .string(let text) = value else { throw problem(place, "is not a string") }
        return text
    }

    func requirements(_ value: JSONValue, at place: String) throws(UnpackError) -> [Policy.Requirement] {
        guard case .array(let items) = value else { throw problem(place, "is not a list of requirements") }
        guard !items.isEmpty else {
            throw problem(
                place, "is an empty list of requirements (it must say something; [{\"type\": \"reject\"}] refuses all)")
        }
        var list: [Policy.Requirement] = []
        for (i, item) in items.enumerated() {
            let here = "\(place)[\(i)]"
            list.append(Policy.Requirement(kind: try requirement(item, at: here), place: here))
        }
        return list
    }

    func requirement(_ value: JSONValue, at place: String) throws(UnpackError) -> Policy.Kind {
        guard case .object(let members) = value else { throw problem(place, "is not a JSON object") }
        let type = try string(members["type"], at: "\(place).type") ?? ""
        switch type {
        case "insecureAcceptAnything":
            _ = try object(value, at: place, known: ["type"])
            return .insecureAcceptAnything
        case "reject":
            _ = try object(value, at: place, known: ["type"])
            return .reject
        case "signedBaseLayer":
            _ = try object(value, at: place, known: ["type", "baseLayerIdentity"])
            return .signedBaseLayer
        case "signedBy":
            return try signedBy(value, at: place)
        case "sigstoreSigned":
            return try sigstoreSigned(value, at: place)
        default:
            throw problem(
                place,
                "has an unknown requirement type \(Self.quoted(type)) (insecureAcceptAnything, reject, signedBy, sigstoreSigned, signedBaseLayer)"
            )
        }
    }

    func signedBy(_ value: JSONValue, at place: String) throws(UnpackError) -> Policy.Kind {
        let members = try object(
            value, at: place, known: ["type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"])
        let keyType = try string(members["keyType"], at: "\(place).keyType") ?? ""
        let known = ["GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs"]
        guard known.contains(keyType) else {
            throw problem(
                "\(place).keyType",
                keyType.isEmpty
                    ? "is missing (GPGKeys)" : "is \(Self.quoted(keyType)), not one of \(known.joined(separator: ", "))"
            )
        }
        let keys = try keySource(
            members, at: place, singular: "keyPath", plural: "keyPaths", data: "keyData", datas: nil)
        return .signedBy(
            keyType: keyType, keys: keys,
            identity: try identity(members["signedIdentity"], at: "\(place).signedIdentity"))
    }

    func sigstoreSigned(_ value: JSONValue, at place: String) throws(UnpackError) -> Policy.Kind {
        let rekor = ["rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas"]
        let members = try object(
            value, at: place,
            known: Set(
                ["type", "keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki", "signedIdentity"] + rekor))
        let identity = try identity(members["signedIdentity"], at: "\(place).signedIdentity")
        let roots = ["fulcio", "pki"].filter { members[$0] != nil }
        let keyFields = ["keyPath", "keyPaths", "keyData", "keyDatas"].filter { members[$0] != nil }
        guard roots.count + keyFields.count == 1 else {
            throw problem(
                place,
                "must have exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio and pki (\(roots.count + keyFields.count == 0 ? "none" : (keyFields + roots).joined(separator: ", ")) present)"
            )
        }
        let rekorFields = rekor.filter { members[$0] != nil }
        guard rekorFields.count <= 1 else {
            throw problem(place, "has more than one of \(rekor.joined(separator: ", "))")
        }
        if let root = roots.first, let settings = members[root] {
            _ = try object(settings, at: "\(place).\(root)", known: nil)
            return .sigstoreSigned(
                keys: .data([]), unsupported: root == "fulcio" ? "Fulcio certificates" : "a PKI of X.509 certificates",
                identity: identity)
        }
        let keys = try keySource(
            members, at: place, singular: "keyPath", plural: "keyPaths", data: "keyData", datas: "keyDatas")
        return .sigstoreSigned(
            keys: keys, unsupported: rekorFields.isEmpty ? nil : "Rekor transparency-log entries (\(rekorFields[0]))",
            identity: identity)
    }

    /// Exactly one of the key fields: paths, or base64 data.
    func keySource(
        _ members: [String: JSONValue], at place: String, singular: String, plural: String, data: String, datas: String?
    ) throws(UnpackError) -> Policy.Keys {
        let present = [singular, plural, data, datas].compactMap { $0 }.filter { members[$0] != nil }
        guard present.count == 1 else {
            let names = [singular, plural, data, datas].compactMap { $0 }.joined(separator: ", ")
            throw problem(
                place,
                "must have exactly one of \(names) (\(present.isEmpty ? "none" : present.joined(separator: ", ")) present)"
            )
        }
        let field = present[0]
        let here = "\(place).\(field)"
        if field == singular {
            guard let path = try string(members[field], at: here), !path.isEmpty else {
                throw problem(here, "is empty")
            }
            return .paths([path])
        }
        guard let given = members[field] else { throw problem(here, "is missing") }
        if field == data {
            return .data([try base64(given, at: here)])
        }
        guard case .array(let items) = given else { throw problem(here, "is not a list") }
        if field == plural {
            var paths: [String] = []
            for (i, item) in items.enumerated() {
                guard let path = try string(item, at: "\(here)[\(i)]"), !path.isEmpty else {
                    throw problem("\(here)[\(i)]", "is empty")
                }
                paths.append(path)
            }
            return .paths(paths)
        }
        var blobs: [[UInt8]] = []
        for (i, item) in items.enumerated() { blobs.append(try base64(item, at: "\(here)[\(i)]")) }
        return .data(blobs)
    }

    func base64(_ value: JSONValue, at place: String) throws(UnpackError) -> [UInt8] {
        guard let text = try string(value, at: place) else { throw problem(place, "is missing") }
        let cleaned = text.filter { $0 != "\r" && $0 != "\n" }
        guard let bytes = decodeBase64(cleaned) else { throw problem(place, "is not base64") }
        return bytes
    }

    func identity(_ value: JSONValue?, at place: String) throws(UnpackError) -> Policy.IdentityRule {
        guard let value else { return .matchRepoDigestOrExact }
        guard case .object(let members) = value else { throw problem(place, "is not a JSON object") }
        let type = try string(members["type"], at: "\(place).type") ?? ""
        func exactly(_ fields: Set<String>) throws(UnpackError) {
            _ = try object(value, at: place, known: fields)
            for field in fields.sorted() where members[field] == nil {
                throw problem(place, "has no \(Self.quoted(field))")
            }
        }
        switch type {
        case "matchExact":
            try exactly(["type"])
            return .matchExact
        case "matchRepoDigestOrExact":
            try exactly(["type"])
            return .matchRepoDigestOrExact
        case "matchRepository":
            try exactly(["type"])
            return .matchRepository
        case "exactReference":
            try exactly(["type", "dockerReference"])
            let text = try string(members["dockerReference"], at: "\(place).dockerReference") ?? ""
            guard let reference = DockerIdentity.parse(text) else {
                throw problem("\(place).dockerReference", "\(Self.quoted(text)) is not a docker reference")
            }
            guard !reference.isNameOnly else {
                throw problem("\(place).dockerReference", "\(Self.quoted(text)) has neither a tag nor a digest")
            }
            return .exactReference(reference)
        case "exactRepository":
            try exactly(["type", "dockerRepository"])
            let text = try string(members["dockerRepository"], at: "\(place).dockerRepository") ?? ""
            guard let repository = DockerIdentity.parse(text) else {
                throw problem("\(place).dockerRepository", "\(Self.quoted(text)) is not a docker repository")
            }
            return .exactRepository(repository)
        case "remapIdentity":
            try exactly(["type", "prefix", "signedPrefix"])
            let prefix = try string(members["prefix"], at: "\(place).prefix") ?? ""
            let signedPrefix = try string(members["signedPrefix"], at: "\(place).signedPrefix") ?? ""
            for (name, text) in [("prefix", prefix), ("signedPrefix", signedPrefix)] where !Self.isPrefix(text) {
                throw problem("\(place).\(name)", "\(Self.quoted(text)) is neither a host nor a HOST/REPOSITORY prefix")
            }
            return .remapIdentity(prefix: prefix, signedPrefix: signedPrefix)
        default:
            throw problem(
                "\(place).type",
                "is \(Self.quoted(type)), not a signedIdentity type (matchExact, matchRepoDigestOrExact, matchRepository, exactReference, exactRepository, remapIdentity)"
            )
        }
    }

    /// A host, or a name that starts with a host (`example.com`, `example.com/ns`).
    static func isPrefix(_ text: String) -> Bool {
        if DockerIdentity.isHost(text) { return true }
        guard let name = DockerIdentity.parse(text, normalize: false) else { return false }
        return name.isNameOnly
    }
}
