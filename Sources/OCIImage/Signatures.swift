/// What a source is asked for when a signature policy needs an image's signatures.
public struct SignatureRequest: Sendable, Equatable {
    /// The manifest the signatures must be for.
    public var manifest: Digest
    /// An `http(s)` lookaside base for the image's repository (registries.d's `lookaside` with
    /// the repository's path appended): signature N is at `BASE@ALGORITHM=HEX/signature-N`, from 1,
    /// until the first one that is not there. `nil`: none (a `file:` lookaside is read by the
    /// policy itself).
    public var lookaside: String?
    /// Read the sigstore attachments (registries.d's `use-sigstore-attachments`): the manifest
    /// tagged `sha256-HEX.sig` in the image's repository, one signature per layer.
    public var attachments: Bool
    /// At most this many signatures are read, each of at most `maxBytes`.
    public var maxSignatures = 128
    /// At most this many bytes of each signature are read.
    public var maxBytes = 4 << 20

    /// A request for `manifest`'s signatures from a lookaside (`http(s)` only) and the attachments.
    public init(manifest: Digest, lookaside: String? = nil, attachments: Bool = false) {
        self.manifest = manifest
        self.lookaside = lookaside
        self.attachments = attachments
    }

    /// The URL of lookaside signature `number` (from 1).
    public func lookasideURL(_ base: String, number: Int) -> String {
        "\(base)@\(manifest.algorithm.rawValue)=\(manifest.encoded)/signature-\(number)"
    }
}

/// A signature as stored: still unverified, and untrusted in every byte.
public enum StoredSignature: Sendable, Equatable {
    /// A lookaside (or `dir:`) signature file: binary OpenPGP "simple signing", or a blob framed
    /// as containers/image frames them (`\0simple-signing\n…`, `\0sigstore-json\n{…}`).
    case blob([UInt8], origin: String)
    /// A sigstore attachment: one layer of the `sha256-HEX.sig` manifest, its payload, media
    /// type and annotations (the signature is `dev.cosignproject.cosign/signature`).
    case attachment(payload: [UInt8], mediaType: String, annotations: [String: String], origin: String)

    /// Where it was found, for messages.
    public var origin: String {
        switch self {
        case .blob(_, let origin), .attachment(_, _, _, let origin): origin
        }
    }
}
