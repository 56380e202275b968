import Crypto

/// A content digest such as `sha256:9f86…`, validated on construction.
///
/// Only `sha256` and `sha512` are accepted, with lowercase hex of exactly the algorithm's length,
/// so that a `Digest` can safely name a file under `blobs/` (CVE-2024-3727: digests used as paths
/// before validation).
public struct Digest: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    /// The hash algorithms a digest may name.
    public enum Algorithm: String, Sendable, CaseIterable {
        case sha256
        case sha512

        /// Length of the hex-encoded value.
        public var hexLength: Int {
            switch self {
            case .sha256: 64
            case .sha512: 128
            }
        }
    }

    /// The hash algorithm, the part before the colon.
    public let algorithm: Algorithm
    /// Lowercase hex, exactly `algorithm.hexLength` characters.
    public let encoded: String

    /// Parses and validates `algorithm:hex`.
    public init(parsing string: String) throws(UnpackError) {
        guard let colon = string.firstIndex(of: ":") else {
            throw UnpackError(.invalidImage, "invalid digest \"\(string.truncatedForMessage)\": expected algorithm:hex")
        }
        let algorithmName = String(string[..<colon])
        let hex = String(string[string.index(after: colon)...])
        guard let algorithm = Algorithm(rawValue: algorithmName) else {
            throw UnpackError(
                .invalidImage,
                "unsupported digest algorithm \"\(algorithmName.truncatedForMessage)\" in \"\(string.truncatedForMessage)\" (supported: sha256, sha512)"
            )
        }
        guard hex.utf8.count == algorithm.hexLength,
            hex.utf8.allSatisfy({
                ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f"))
            })
        else {
            throw UnpackError(
                .invalidImage,
                "invalid digest \"\(string.truncatedForMessage)\": \(algorithm.rawValue) needs \(algorithm.hexLength) lowercase hex digits"
            )
        }
        self.algorithm = algorithm
        self.encoded = hex
    }

    /// The algorithm of `text` when it is a well-formed digest (image-spec's grammar:
    /// `algorithm:encoded`, algorithm components `[a-z0-9]+` joined by `+._-`, encoded
    /// `[a-zA-Z0-9=_-]+`) of an algorithm oci-unpack cannot verify, such as `blake3`; nil otherwise.
    public static func unverifiableAlgorithm(in text: String) -> String? {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let algorithm = text[..<colon]
        let encoded = text[text.index(after: colon)...]
        guard Algorithm(rawValue: String(algorithm)) == nil, !algorithm.isEmpty, !encoded.isEmpty else { return nil }
        func component(_ c: UInt8) -> Bool { (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) }
        var previousSeparator = true
        for c in algorithm.utf8 {
            if component(c) {
                previousSeparator = false
            } else if "+._-".utf8.contains(c), !previousSeparator {
                previousSeparator = true
            } else {
                return nil
            }
        }
        guard !previousSeparator else { return nil }
        let encodedOK = encoded.utf8.allSatisfy {
            component($0) || ($0 >= 0x41 && $0 <= 0x5a) || $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "_")
                || $0 == UInt8(ascii: "-")
        }
        return encodedOK ? String(algorithm) : nil
    }

    /// Reads a JSON string `algorithm:hex`, validated as ``init(parsing:)`` validates it.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        do {
            try self.init(parsing: string)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    /// Writes the JSON string `algorithm:hex`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// The digest as `algorithm:hex`.
    public var description: String { "\(algorithm.rawValue):\(encoded)" }

    /// The first 12 hex digits, for progress lines.
    public var short: String { String(encoded.prefix(12)) }

    /// Orders digests by their `algorithm:hex` text, for stable output.
    public static func < (lhs: Digest, rhs: Digest) -> Bool { lhs.description < rhs.description }

    /// The digest of `bytes` with `algorithm`.
    public static func of(_ bytes: some Sequence<UInt8>, algorithm: Algorithm = .sha256) -> Digest {
        var digester = Digester(algorithm)
        digester.update(Array(bytes))
        return digester.finalize()
    }
}

/// Incremental hashing for a `Digest` algorithm; hashes caller buffers in place, without copying.
public struct Digester: Sendable {
    private enum State: Sendable {
        case sha256(SHA256)
        case sha512(SHA512)
    }

    private var state: State
    /// The algorithm of the digest that ``finalize()`` returns.
    public let algorithm: Digest.Algorithm

    /// Starts a hash of no bytes with `algorithm`.
    public init(_ algorithm: Digest.Algorithm) {
        self.algorithm = algorithm
        switch algorithm {
        case .sha256: state = .sha256(SHA256())
        case .sha512: state = .sha512(SHA512())
        }
    }

    /// Adds the bytes of `buffer` to the hash, after those already added.
    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        switch state {
        case .sha256(var h):
            h.update(bufferPointer: buffer)
            state = .sha256(h)
        case .sha512(var h):
            h.update(bufferPointer: buffer)
            state = .sha512(h)
        }
    }

    /// Adds `bytes` to the hash, after those already added.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest of all the bytes added so far.
    public func finalize() -> Digest {
        let hex: String
        switch state {
        case .sha256(let h): hex = h.finalize().hexString
        case .sha512(let h): hex = h.finalize().hexString
        }
        // The hex comes from a hash of the right algorithm, so it always validates.
        return Digest(unchecked: algorithm, hex)
    }
}

extension Digest {
    fileprivate init(unchecked algorithm: Algorithm, _ encoded: String) {
        self.algorithm = algorithm
        self.encoded = encoded
    }
}

extension Sequence where Element == UInt8 {
    fileprivate var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    /// The string cut to 100 characters for an error message, so a hostile input cannot flood it.
    public var truncatedForMessage: String {
        count > 100 ? String(prefix(100)) + "…" : self
    }
}

extension Substring {
    /// Without leading and trailing spaces. Index arithmetic on purpose: `reversed()` and
    /// `String(_: some Sequence)` cost a few hundred microseconds of generic-metadata set-up the first
    /// time a process runs them.
    package var trimmingSpaces: Substring {
        var start = startIndex
        var end = endIndex
        while start < end, self[start] == " " { start = index(after: start) }
        while end > start, self[index(before: end)] == " " { end = index(before: end) }
        return self[start..<end]
    }
}
