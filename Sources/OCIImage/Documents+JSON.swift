/// The image documents built from the strict reader's values (`JSONValue`), not from a second,
/// lenient parse: what oci-unpack acts on is exactly what the strict reader accepted, so no
/// document can mean one thing here and another to a Go tool.
///
/// Field rules follow the OCI and Docker schemas: a required field must be there (and not `null`),
/// an optional one may be absent or `null`, unknown fields are ignored. A failure names the field
/// by its place in the document (`.layers[0].digest`).
package struct DocumentFields {
    /// A document that does not fit its model: what is wrong, and where.
    package struct Problem: Error, CustomStringConvertible {
        package let description: String
        /// Set when the problem is a well-formed digest of an algorithm oci-unpack cannot verify
        /// (`blake3`): what names it cannot be used, but the document is not malformed.
        package var unverifiableAlgorithm: String?
        package init(description: String, unverifiableAlgorithm: String? = nil) {
            self.description = description
            self.unverifiableAlgorithm = unverifiableAlgorithm
        }
    }

    package let members: [String: JSONValue]
    /// Where this object is in the document: empty at the top, else `.config`, `.layers[2]`, …
    package let path: String

    package init(_ value: JSONValue, at path: String) throws(Problem) {
        guard case .object(let members) = value else {
            throw Problem(description: "wrong type\(Self.place(path)): expected an object")
        }
        // Go's encoding/json (docker, containerd, scanners, policy engines) matches a key to a
        // field ignoring case, the last match winning: `"User":"root","user":"app"` runs as app
        // there. A key that is a field's name in another spelling is refused, so that no
        // document means one thing here and another there.
        for key in members.keys {
            if let field = Self.knownField(matching: key), field != key {
                throw Problem(
                    description:
                        "key \"\(key.truncatedForMessage)\"\(Self.place(path)) is field \"\(field)\" to Go's decoder, which ignores case (spell it \"\(field)\")"
                )
            }
        }
        self.members = members
        self.path = path
    }

    /// Every field name this reader (or the document schemas) gives a meaning.
    package static let knownFields = [
        "mediaType", "schemaVersion", "artifactType", "config", "layers", "subject", "annotations", "manifests",
        "digest", "size", "urls", "platform", "architecture", "os", "variant", "os.version", "os.features",
        "features", "created", "author", "rootfs", "history", "type", "diff_ids", "created_by", "comment",
        "empty_layer", "User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
        "StopSignal", "imageLayoutVersion",
    ]

    /// The known field `key` is to Go's decoder, in its own spelling, or nil.
    package static func knownField(matching key: String) -> String? {
        // Almost every key of a real document is a field's exact name: answered by a switch,
        // without folding anything (this runs for every key of every document, at start-up).
        switch key {
        case "mediaType", "schemaVersion", "artifactType", "config", "layers", "subject", "annotations", "manifests",
            "digest", "size", "urls", "platform", "architecture", "os", "variant", "os.version", "os.features",
            "features", "created", "author", "rootfs", "history", "type", "diff_ids", "created_by", "comment",
            "empty_layer", "User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
            "StopSignal", "imageLayoutVersion":
            return key
        default:
            let folded = fold(key)
            return knownFields.first { fold($0) == folded }
        }
    }

    /// A key as Go's decoder compares it: case folded, with the long s and the Kelvin sign
    /// matching s and k as they do there.
    static func fold(_ key: String) -> String {
        // ASCII keys (all real ones) are folded byte by byte: String.lowercased() costs a
        // Unicode-table set-up on its first use, measurable at start-up.
        if key.utf8.allSatisfy({ $0 < 0x80 }) {
            return String(decoding: key.utf8.map { (0x41...0x5a).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
        }
        var out = String.UnicodeScalarView()
        for scalar in key.lowercased().unicodeScalars {
            out.append(scalar == "\u{17F}" ? "s" : scalar == "\u{212A}" ? "k" : scalar)
        }
        return String(out)
    }

    package static func place(_ path: String) -> String { path.isEmpty ? "" : " at \(path)" }

    /// The member `key`, `nil` when absent or `null`.
    package func optional(_ key: String) -> JSONValue? {
        guard let value = members[key] else { return nil }
        if case .null = value { return nil }
        return value
    }

    package func required(_ key: String) throws(Problem) -> JSONValue {
        guard let value = optional(key) else {
            throw Problem(description: "missing field \"\(key)\"\(Self.place(path))")
        }
        return value
    }

    package func wrongType(_ key: String, _ expected: String) -> Problem {
        Problem(description: "wrong type\(Self.place(path + "." + key)): expected \(expected)")
    }

    package func string(_ key: String) throws(Problem) -> String {
        guard case .string(let text) = try required(key) else { throw wrongType(key, "a string") }
        return text
    }

    package func optionalString(_ key: String) throws(Problem) -> String? {
        guard let value = optional(key) else { return nil }
        guard case .string(let text) = value else { throw wrongType(key, "a string") }
        return text
    }

    package func int64(_ key: String) throws(Problem) -> Int64 {
        guard case .int(let number) = try required(key) else { throw wrongType(key, "an integer") }
        return number
    }

    package func optionalInt(_ key: String) throws(Problem) -> Int? {
        guard let value = optional(key) else { return nil }
        guard case .int(let number) = value, let fits = Int(exactly: number) else {
            throw wrongType(key, "an integer")
        }
        return fits
    }

    package func optionalBool(_ key: String) throws(Problem) -> Bool? {
        guard let value = optional(key) else { return nil }
        guard case .bool(let flag) = value else { throw wrongType(key, "a boolean") }
        return flag
    }

    package func optionalStrings(_ key: String) throws(Problem) -> [String]? {
        guard let value = optional(key) else { return nil }
        guard case .array(let elements) = value else { throw wrongType(key, "an array of strings") }
        var out: [String] = []
        out.reserveCapacity(elements.count)
        for element in elements {
            guard case .string(let text) = element else { throw wrongType(key, "an array of strings") }
            out.append(text)
        }
        return out
    }

    package func optionalStringMap(_ key: String) throws(Problem) -> [String: String]? {
        guard let value = optional(key) else { return nil }
        guard case .object(let members) = value else { throw wrongType(key, "an object of strings") }
        var out: [String: String] = [:]
        for (name, member) in members {
            guard case .string(let text) = member else { throw wrongType(key, "an object of strings") }
            out[name] = text
        }
        return out
    }

    /// `{"80/tcp": {}, …}` (ExposedPorts, Volumes): the keys; the values must be objects.
    package func optionalSet(_ key: String) throws(Problem) -> [String: EmptyObject]? {
        guard let value = optional(key) else { return nil }
        guard case .object(let members) = value else { throw wrongType(key, "an object") }
        var out: [String: EmptyObject] = [:]
        for (name, member) in members {
            guard case .object = member else { throw wrongType(key + "." + name, "an object") }
            out[name] = EmptyObject()
        }
        return out
    }

    package func object(_ key: String) throws(Problem) -> DocumentFields {
        try DocumentFields(required(key), at: path + "." + key)
    }

    package func optionalObject(_ key: String) throws(Problem) -> DocumentFields? {
        guard let value = optional(key) else { return nil }
        return try DocumentFields(value, at: path + "." + key)
    }

    /// The elements of an array of objects.
    package func objects(_ key: String, required: Bool) throws(Problem) -> [DocumentFields]? {
        guard let value = required ? try self.required(key) : optional(key) else { return nil }
        guard case .array(let elements) = value else { throw wrongType(key, "an array") }
        var out: [DocumentFields] = []
        out.reserveCapacity(elements.count)
        for (i, element) in elements.enumerated() {
            out.append(try DocumentFields(element, at: "\(path).\(key)[\(i)]"))
        }
        return out
    }

    package func digest(_ key: String) throws(Problem) -> Digest {
        let text = try string(key)
        do throws(UnpackError) {
            return try Digest(parsing: text)
        } catch {
            throw Problem(
                description: "\(error.message)\(Self.place(path + "." + key))",
                unverifiableAlgorithm: Digest.unverifiableAlgorithm(in: text))
        }
    }
}

extension Descriptor {
    init(fields f: DocumentFields) throws(DocumentFields.Problem) {
        let digest = try f.digest("digest")
        let size = try f.int64("size")
        guard size >= 0 else {
            throw DocumentFields.Problem(
                description: "descriptor \(digest) has negative size \(size)\(DocumentFields.place(f.path))")
        }
        self.init(
            mediaType: MediaType(try f.string("mediaType")), digest: digest, size: size,
            annotations: try f.optionalStringMap("annotations"),
            platform: try f.optionalObject("platform").map { (p) throws(DocumentFields.Problem) in
                try Platform(fields: p)
            },
            urls: try f.optionalStrings("urls"), artifactType: try f.optionalString("artifactType"))
    }
}

extension Descriptor {
    /// A descriptor from JSON text (an annotation's value), read by the strict reader. A problem
    /// says what is wrong: not JSON, not an object, a field missing or of the wrong type.
    package init(jsonText text: String) throws(DocumentFields.Problem) {
        let value: JSONValue
        do throws(JSONValue.SyntaxError) {
            value = try JSONValue(parsing: Array(text.utf8), maxDepth: 16)
        } catch {
            throw DocumentFields.Problem(description: "not valid JSON: \(error)")
        }
        try self.init(fields: DocumentFields(value, at: ""))
    }
}

extension Platform {
    init(fields f: DocumentFields) throws(DocumentFields.Problem) {
        self.init(
            os: try f.string("os"), architecture: try f.string("architecture"),
            variant: try f.optionalString("variant"),
            osVersion: try f.optionalString("os.version"), osFeatures: try f.optionalStrings("os.features"))
    }
}

extension DocumentFields {
    /// A required array of descriptors (`layers`, `manifests`).
    func descriptors(_ key: String) throws(Problem) -> [Descriptor] {
        var out: [Descriptor] = []
        for element in try objects(key, required: true) ?? [] { out.append(try Descriptor(fields: element)) }
        return out
    }

    /// An optional descriptor (`subject`).
    func optionalDescriptor(_ key: String) throws(Problem) -> Descriptor? {
        guard let fields = try optionalObject(key) else { return nil }
        return try Descriptor(fields: fields)
    }
}

extension Manifest {
    init(fields f: DocumentFields) throws(DocumentFields.Problem) {
        self.init(
            mediaType: try f.optionalString("mediaType").map(MediaType.init(rawValue:)),
            config: try Descriptor(fields: f.object("config")), layers: try f.descriptors("layers"),
            annotations: try f.optionalStringMap("annotations"))
        schemaVersion = try f.optionalInt("schemaVersion") ?? 0
        artifactType = try f.optionalString("artifactType")
        subject = try f.optionalDescriptor("subject")
    }
}

extension Index {
    init(fields f: DocumentFields) throws(DocumentFields.Problem) {
        var manifests: [Descriptor] = []
        var unverifiable: [Index.UnverifiableEntry] = []
        for (position, element) in (try f.objects("manifests", required: true) ?? []).enumerated() {
            do throws(DocumentFields.Problem) {
                manifests.append(try Descriptor(fields: element))
            } catch {
                // Listed, but nothing it names can be verified: kept to be reported, never used.
                guard let algorithm = error.unverifiableAlgorithm else { throw error }
                unverifiable.append(
                    Index.UnverifiableEntry(
                        position: position, digest: (try? element.string("digest")) ?? "",
                        mediaType: (try? element.string("mediaType")) ?? "", algorithm: algorithm,
                        platform: (try? element.optionalObject("platform")).flatMap { $0 }.flatMap {
                            try? Platform(fields: $0)
                        }))
            }
        }
        self.init(
            mediaType: try f.optionalString("mediaType").map(MediaType.init(rawValue:)),
            manifests: manifests, annotations: try f.optionalStringMap("annotations"))
        unverifiableEntries = unverifiable
        schemaVersion = try f.optionalInt("schemaVersion") ?? 0
        artifactType = try f.optionalString("artifactType")
        subject = try f.optionalDescriptor("subject")
    }
}

extension ImageConfig {
    /// Fields are read in the order the schema lists them (architecture and os first), so the
    /// first problem reported is the one Codable reported.
    init(fields f: DocumentFields) throws(DocumentFields.Problem) {
        let created = try f.optionalString("created")
        let author = try f.optionalString("author")
        let architecture = try f.string("architecture")
        let os = try f.string("os")
        let platform = Platform(
            os: os, architecture: architecture, variant: try f.optionalString("variant"),
            osVersion: try f.optionalString("os.version"), osFeatures: try f.optionalStrings("os.features"))
        let execution = try f.optionalObject("config").map { (c) throws(DocumentFields.Problem) in
            try Execution(fields: c)
        }
        let rootfs = try f.object("rootfs")
        let type = try rootfs.string("type")
        guard case .array(let ids) = try rootfs.required("diff_ids") else {
            throw rootfs.wrongType("diff_ids", "an array of digests")
        }
        var diffIDs: [Digest] = []
        for (i, id) in ids.enumerated() {
            guard case .string(let text) = id else { throw rootfs.wrongType("diff_ids[\(i)]", "a digest string") }
            do throws(UnpackError) {
                diffIDs.append(try Digest(parsing: text))
            } catch {
                throw DocumentFields.Problem(
                    description: "\(error.message) at .rootfs.diff_ids[\(i)]",
                    unverifiableAlgorithm: Digest.unverifiableAlgorithm(in: text))
            }
        }
        self.init(platform: platform, config: execution, diffIDs: diffIDs, created: created)
        self.author = author
        self.rootfs.type = type
        if let entries = try f.objects("history", required: false) {
            var history: [History] = []
            for entry in entries {
                history.append(
                    History(
                        created: try entry.optionalString("created"), createdBy: try entry.optionalString("created_by"),
                        comment: try entry.optionalString("comment"), emptyLayer: try entry.optionalBool("empty_layer"))
                )
            }
            self.history = history
        }
    }
}

extension ImageConfig.Execution {
    init(fields f: DocumentFields) throws(DocumentFields.Problem) {
        self.init(
            user: try f.optionalString("User"), exposedPorts: try f.optionalSet("ExposedPorts"),
            env: try f.optionalStrings("Env"), entrypoint: try f.optionalStrings("Entrypoint"),
            cmd: try f.optionalStrings("Cmd"), volumes: try f.optionalSet("Volumes"),
            workingDir: try f.optionalString("WorkingDir"), labels: try f.optionalStringMap("Labels"),
            stopSignal: try f.optionalString("StopSignal"))
    }
}
