import Crypto
import FoundationEssentials
import OCIImage

/// A public key of a `sigstoreSigned` requirement: ECDSA on P-256 (cosign's default), P-384 or
/// P-521, from a PEM `PUBLIC KEY` block. As containers/image (sigstore's `LoadVerifier` with
/// SHA-256), every curve verifies an ASN.1 DER signature over the payload's SHA-256.
package enum SigstoreKey: Sendable {
    case p256(P256.Signing.PublicKey)
    case p384(P384.Signing.PublicKey)
    case p521(P521.Signing.PublicKey)

    /// The key of a PEM text; `origin` names it for messages (a file, or `keyData`).
    package init(pem: String, origin: String) throws(UnpackError) {
        if let key = try? P256.Signing.PublicKey(pemRepresentation: pem) {
            self = .p256(key)
        } else if let key = try? P384.Signing.PublicKey(pemRepresentation: pem) {
            self = .p384(key)
        } else if let key = try? P521.Signing.PublicKey(pemRepresentation: pem) {
            self = .p521(key)
        } else {
            throw UnpackError(
                .invalidArgument,
                "\(origin) is not a PEM public key of a kind sigstoreSigned supports here (ECDSA P-256, P-384 or P-521)",
                context: .init(path: origin))
        }
    }

    /// Whether `signature` (DER) is this key's over SHA-256(`payload`).
    package func verifies(_ signature: [UInt8], over payload: [UInt8]) -> Bool {
        let digest = SHA256.hash(data: payload)
        switch self {
        case .p256(let key):
            guard let parsed = try? P256.Signing.ECDSASignature(derRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: digest)
        case .p384(let key):
            guard let parsed = try? P384.Signing.ECDSASignature(derRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: digest)
        case .p521(let key):
            guard let parsed = try? P521.Signing.ECDSASignature(derRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: digest)
        }
    }
}

/// What a signature's payload claims, once its signature verified: the manifest digest it signs
/// and the image identity it names. Both are untrusted JSON read by the strict reader, with the
/// exact fields containers/image requires.
package struct SignedClaims: Sendable, Equatable {
    /// `critical.image.docker-manifest-digest`, as written.
    package let manifestDigest: String
    /// `critical.identity.docker-reference`, as written.
    package let dockerReference: String

    package init(manifestDigest: String, dockerReference: String) {
        self.manifestDigest = manifestDigest
        self.dockerReference = dockerReference
    }

    /// The payload of an OpenPGP "simple signing" signature (`atomic container signature`).
    package static func simpleSigning(_ payload: [UInt8]) -> Result<SignedClaims, SignatureProblem> {
        read(payload, type: "atomic container signature", optionalRequired: true)
    }

    /// The payload of a sigstore signature (`cosign container image signature`).
    package static func sigstore(_ payload: [UInt8]) -> Result<SignedClaims, SignatureProblem> {
        read(payload, type: "cosign container image signature", optionalRequired: false)
    }

    private static func read(_ payload: [UInt8], type: String, optionalRequired: Bool)
        -> Result<SignedClaims, SignatureProblem>
    {
        let value: JSONValue
        do throws(JSONValue.SyntaxError) {
            value = try JSONValue(parsing: payload, maxDepth: 16)
        } catch {
            return .failure(SignatureProblem("has a payload that is not strict JSON: \(error)"))
        }
        func problem(_ text: String) -> Result<SignedClaims, SignatureProblem> {
            .failure(SignatureProblem("has a malformed payload: \(text)"))
        }
        guard case .object(let top) = value else { return problem("not a JSON object") }
        for key in top.keys where key != "critical" && key != "optional" {
            return problem("unknown field \"\(key.truncatedForMessage)\"")
        }
        if optionalRequired, top["optional"] == nil { return problem("no \"optional\" field") }
        if let optional = top["optional"] {
            switch optional {
            case .object(let fields):
                if let creator = fields["creator"], case .string = creator {
                } else if fields["creator"] != nil {
                    return problem("optional.creator is not a string")
                }
                if let timestamp = fields["timestamp"], case .int = timestamp {
                } else if fields["timestamp"] != nil {
                    return problem("optional.timestamp is not an integer")
                }
            case .null where !optionalRequired:
                break
            default:
                return problem("\"optional\" is not an object")
            }
        }
        guard case .object(let critical)? = top["critical"] else { return problem("no \"critical\" object") }
        guard Set(critical.keys) == ["type", "image", "identity"] else {
            return problem("critical must have exactly the fields type, image and identity")
        }
        guard case .string(let declared)? = critical["type"] else { return problem("critical.type is not a string") }
        guard declared == type else {
            return problem("critical.type is \"\(declared.truncatedForMessage)\", not \"\(type)\"")
        }
        guard case .object(let image)? = critical["image"], image.count == 1,
            case .string(let digest)? = image["docker-manifest-digest"]
        else { return problem("critical.image must be exactly {\"docker-manifest-digest\": string}") }
        guard case .object(let identity)? = critical["identity"], identity.count == 1,
            case .string(let reference)? = identity["docker-reference"]
        else { return problem("critical.identity must be exactly {\"docker-reference\": string}") }
        return .success(SignedClaims(manifestDigest: digest, dockerReference: reference))
    }
}

/// Base64 (standard alphabet, padded) as cosign writes its signature annotation.
package func decodeBase64(_ text: String) -> [UInt8]? {
    Data(base64Encoded: text).map(Array.init)
}
