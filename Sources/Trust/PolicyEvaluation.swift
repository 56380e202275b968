import FoundationEssentials
import OCIImage

/// The image a policy decides on: its transport, its identity and namespaces as
/// containers/image names them (the keys of `transports.T`, most specific first), and its docker
/// reference, which signatures' claimed identities are matched against.
package struct PolicySubject: Sendable, Equatable {
    /// `docker`, `oci`, `oci-archive`, `docker-archive`.
    package let transport: String
    /// The exact scope (`host/repo:tag`, `host/repo@digest`, a layout's resolved path).
    package let identity: String
    /// The broader scopes, in order.
    package let namespaces: [String]
    /// The image's docker reference (`docker` only).
    package let dockerReference: DockerIdentity?
    /// The reference as the user wrote it, for messages.
    package let display: String

    /// A `docker://` image: scopes `host/repo:tag` (or `@digest`), `host/repo`, each parent
    /// namespace up to `host[:port]`, then `*.domain` for each shorter domain of the host.
    package static func docker(_ reference: DockerIdentity, display: String) -> PolicySubject {
        var namespaces = [reference.name]
        var name = reference.name
        while let slash = name.lastIndex(of: "/") {
            name = String(name[..<slash])
            namespaces.append(name)
        }
        var labels = name.prefix(while: { $0 != ":" }).split(separator: ".", omittingEmptySubsequences: false)
        while labels.count > 1 {
            labels.removeFirst()
            namespaces.append("*." + labels.joined(separator: "."))
        }
        return PolicySubject(
            transport: "docker", identity: reference.description, namespaces: namespaces, dockerReference: reference,
            display: display)
    }

    /// A layout or an OCI archive: scope its resolved path, then each parent directory but `/`.
    package static func path(transport: String, resolved: String, display: String) -> PolicySubject {
        var namespaces: [String] = []
        var path = resolved
        while path.count > 1 {
            namespaces.append(path)
            guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { break }
            path = String(path[..<slash])
        }
        return PolicySubject(
            transport: transport, identity: resolved, namespaces: namespaces, dockerReference: nil, display: display)
    }

    /// A docker archive: containers/image gives it no scope but the transport's `""`.
    package static func dockerArchive(display: String) -> PolicySubject {
        PolicySubject(transport: "docker-archive", identity: "", namespaces: [], dockerReference: nil, display: display)
    }
}

/// What a policy decided, and why.
package struct PolicyVerdict: Sendable, Equatable {
    package let accepted: Bool
    /// The list of requirements that applied (`default`, `transports.docker["host/ns"]`).
    package let scope: String
    /// Which requirement decided and how: for a refusal the requirement that refused and its
    /// reason; for an acceptance what each requirement accepted (the signature and its key).
    package let reason: String
}

extension Policy {
    /// The decision on `subject`, whose manifest is `manifest`: the requirements of its most
    /// specific scope, in order; the first that refuses decides, and all must accept.
    /// `signatures` is asked at most once, only when a requirement needs them.
    package func evaluate(
        _ subject: PolicySubject, manifest: Digest, signatures: () throws(UnpackError) -> [StoredSignature]
    ) throws(UnpackError) -> PolicyVerdict {
        let (list, scope) = requirements(for: subject)
        var fetched: [ParsedSignature]?
        // Read at most once, and only when a requirement needs them.
        func stored() throws(UnpackError) -> [ParsedSignature] {
            if let fetched { return fetched }
            let parsed = try signatures().enumerated().map { ParsedSignature($1, number: $0 + 1) }
            fetched = parsed
            return parsed
        }
        var accepted: [String] = []
        for requirement in list {
            let outcome: Result<String, SignatureProblem>
            switch requirement.kind {
            case .insecureAcceptAnything:
                outcome = .success("insecureAcceptAnything")
            case .reject:
                outcome = .failure(SignatureProblem("reject: every image in this scope is refused"))
            case .signedBaseLayer:
                outcome = .failure(SignatureProblem("signedBaseLayer: not implemented (in containers/image either)"))
            case .signedBy(let keyType, let keys, let identity):
                outcome = Self.signedBy(
                    keyType: keyType, keys: keys, identity: identity, subject: subject, manifest: manifest,
                    signatures: try stored())
            case .sigstoreSigned(let keys, let unsupported, let identity):
                if let unsupported {
                    outcome = .failure(
                        SignatureProblem(
                            "sigstoreSigned: \(unsupported) are not supported by oci-unpack (only public keys)"))
                    break
                }
                outcome = Self.sigstoreSigned(
                    keys: keys, identity: identity, subject: subject, manifest: manifest, signatures: try stored())
            }
            switch outcome {
            case .success(let how):
                accepted.append(how)
            case .failure(let problem):
                return PolicyVerdict(
                    accepted: false, scope: scope, reason: "\(requirement.place) \(problem.description)")
            }
        }
        return PolicyVerdict(accepted: true, scope: scope, reason: accepted.joined(separator: "; "))
    }

    static func signedBy(
        keyType: String, keys: Keys, identity: IdentityRule, subject: PolicySubject, manifest: Digest,
        signatures: [ParsedSignature]
    ) -> Result<String, SignatureProblem> {
        guard keyType == "GPGKeys" else {
            return .failure(SignatureProblem("signedBy: keyType \(keyType) is not implemented (only GPGKeys)"))
        }
        let simple = signatures.filter { if case .sigstore = $0.form { false } else { true } }
        guard !simple.isEmpty else {
            return .failure(SignatureProblem("signedBy: a signature was required, but no signature exists"))
        }
        let keyring: OpenPGPKeyring
        switch loadKeys(keys) {
        case .failure(let problem): return .failure(SignatureProblem("signedBy: \(problem)"))
        case .success(let (blobs, origins)):
            guard !blobs.isEmpty else { return .failure(SignatureProblem("signedBy: no public keys are given")) }
            do throws(UnpackError) {
                keyring = try OpenPGPKeyring(keys: blobs, origins: origins)
            } catch {
                return .failure(SignatureProblem("signedBy: \(error.message)"))
            }
        }
        var reasons: [String] = []
        for signature in simple {
            let verified: Result<(payload: [UInt8], fingerprint: String), SignatureProblem>
            switch signature.form {
            case .simple(let bytes): verified = keyring.verify(bytes)
            case .malformed(let problem): verified = .failure(problem)
            case .sigstore: continue
            }
            switch verified.flatMap({ result in
                SignedClaims.simpleSigning(result.payload).flatMap { claims in
                    check(claims, manifest: manifest, identity: identity, subject: subject).map { result.fingerprint }
                }
            }) {
            case .success(let fingerprint):
                return .success("signedBy: \(signature.label) by key \(fingerprint)")
            case .failure(let problem):
                reasons.append("\(signature.label) \(problem)")
            }
        }
        return .failure(SignatureProblem("signedBy: no signature is accepted: \(reasons.joined(separator: "; "))"))
    }

    static func sigstoreSigned(
        keys: Keys, identity: IdentityRule, subject: PolicySubject, manifest: Digest, signatures: [ParsedSignature]
    ) -> Result<String, SignatureProblem> {
        var candidates: [(ParsedSignature, [UInt8], [String: String])] = []
        var skipped = 0
        for signature in signatures {
            guard case .sigstore(let payload, let mediaType, let annotations) = signature.form,
                mediaType == "application/vnd.dev.cosign.simplesigning.v1+json"
            else {
                skipped += 1
                continue
            }
            candidates.append((signature, payload, annotations))
        }
        guard !candidates.isEmpty else {
            return .failure(
                SignatureProblem(
                    "sigstoreSigned: a signature was required, but no sigstore signature exists"
                        + (skipped > 0
                            ? " (\(skipped) other signature\(skipped == 1 ? "" : "s") or attachment\(skipped == 1 ? "" : "s"))"
                            : "")))
        }
        var publicKeys: [SigstoreKey] = []
        switch loadKeys(keys) {
        case .failure(let problem): return .failure(SignatureProblem("sigstoreSigned: \(problem)"))
        case .success(let (blobs, origins)):
            guard !blobs.isEmpty else { return .failure(SignatureProblem("sigstoreSigned: no public keys are given")) }
            for (blob, origin) in zip(blobs, origins) {
                do throws(UnpackError) {
                    publicKeys.append(try SigstoreKey(pem: String(decoding: blob, as: UTF8.self), origin: origin))
                } catch {
                    return .failure(SignatureProblem("sigstoreSigned: \(error.message)"))
                }
            }
        }
        var reasons: [String] = []
        for (signature, payload, annotations) in candidates {
            let problem: SignatureProblem
            if let encoded = annotations["dev.cosignproject.cosign/signature"] {
                if let der = decodeBase64(encoded) {
                    if publicKeys.contains(where: { $0.verifies(der, over: payload) }) {
                        switch SignedClaims.sigstore(payload).flatMap({
                            check($0, manifest: manifest, identity: identity, subject: subject)
                        }) {
                        case .success: return .success("sigstoreSigned: \(signature.label)")
                        case .failure(let failure): problem = failure
                        }
                    } else {
                        problem = SignatureProblem("is not signed by any of the keys (the cryptographic check failed)")
                    }
                } else {
                    problem = SignatureProblem("has a dev.cosignproject.cosign/signature annotation that is not base64")
                }
            } else {
                problem = SignatureProblem("has no dev.cosignproject.cosign/signature annotation")
            }
            reasons.append("\(signature.label) \(problem)")
        }
        return .failure(
            SignatureProblem("sigstoreSigned: no signature is accepted: \(reasons.joined(separator: "; "))"))
    }

    /// The key files' bytes (read now, when a signature is to be checked), or the inline keys.
    static func loadKeys(_ keys: Keys) -> Result<([[UInt8]], [String]), SignatureProblem> {
        switch keys {
        case .data(let blobs):
            return .success((blobs, blobs.indices.map { blobs.count == 1 ? "keyData" : "keyData[\($0)]" }))
        case .paths(let paths):
            var blobs: [[UInt8]] = []
            for path in paths {
                guard let data = FileManager.default.contents(atPath: path) else {
                    return .failure(SignatureProblem("the key file \(path) cannot be read"))
                }
                guard data.count <= 1 << 20 else {
                    return .failure(SignatureProblem("the key file \(path) is larger than 1 MiB"))
                }
                blobs.append(Array(data))
            }
            return .success((blobs, paths))
        }
    }

    /// A verified payload's claims against the image: its manifest digest, then its identity.
    static func check(_ claims: SignedClaims, manifest: Digest, identity: IdentityRule, subject: PolicySubject)
        -> Result<Void, SignatureProblem>
    {
        guard claims.manifestDigest == manifest.description else {
            return .failure(
                SignatureProblem(
                    "is for manifest \(claims.manifestDigest.truncatedForMessage), not \(manifest)"))
        }
        guard let signed = DockerIdentity.parse(claims.dockerReference),
            matches(identity, intended: subject.dockerReference, signed: signed)
        else {
            return .failure(
                SignatureProblem(
                    "claims identity \(DisplayText.escaping(claims.dockerReference.truncatedForMessage)), which \(describe(identity)) does not accept for \(subject.display)"
                ))
        }
        return .success(())
    }

    static func describe(_ rule: IdentityRule) -> String {
        switch rule {
        case .matchExact: "signedIdentity matchExact"
        case .matchRepoDigestOrExact: "signedIdentity matchRepoDigestOrExact (the default)"
        case .matchRepository: "signedIdentity matchRepository"
        case .exactReference(let reference): "signedIdentity exactReference \(reference)"
        case .exactRepository(let repository): "signedIdentity exactRepository \(repository.name)"
        case .remapIdentity(let prefix, let signedPrefix): "signedIdentity remapIdentity \(prefix) → \(signedPrefix)"
        }
    }

    /// containers/image's `signedIdentity` rules (policy_reference_match.go).
    package static func matches(_ rule: IdentityRule, intended: DockerIdentity?, signed: DockerIdentity) -> Bool {
        switch rule {
        case .matchExact:
            guard let intended, !intended.isNameOnly, !signed.isNameOnly else { return false }
            return intended.description == signed.description
        case .matchRepoDigestOrExact:
            guard let intended else { return false }
            return repoDigestOrExact(intended, signed)
        case .matchRepository:
            guard let intended else { return false }
            return intended.name == signed.name
        case .exactReference(let reference):
            guard !signed.isNameOnly else { return false }
            return reference.description == signed.description
        case .exactRepository(let repository):
            return repository.name == signed.name
        case .remapIdentity(let prefix, let signedPrefix):
            guard let intended else { return false }
            var compared = intended
            if intended.name == prefix || intended.name.hasPrefix(prefix + "/") {
                // The name starts with the prefix, so the reference does.
                let text = signedPrefix + intended.description.dropFirst(prefix.count)
                guard let remapped = DockerIdentity.parse(text, normalize: false), remapped.description == text else {
                    return false
                }
                compared = remapped
            }
            return repoDigestOrExact(compared, signed)
        }
    }

    /// matchRepoDigestOrExact: a tagged image needs that exact reference signed; an image by
    /// digest only its repository (the digest itself is what the signature signs).
    static func repoDigestOrExact(_ intended: DockerIdentity, _ signed: DockerIdentity) -> Bool {
        guard !signed.isNameOnly else { return false }
        if intended.tag != nil { return intended.description == signed.description }
        if intended.digest != nil { return intended.name == signed.name }
        return false
    }
}

/// A stored signature, sorted by its form, before any check.
package struct ParsedSignature {
    package enum Form {
        case simple([UInt8])
        case sigstore(payload: [UInt8], mediaType: String, annotations: [String: String])
        case malformed(SignatureProblem)
    }

    let form: Form
    /// `signature 2 (URL)`.
    let label: String

    /// The first bytes of binary OpenPGP packets containers/image takes for a simple signature.
    static let openPGPStarts: Set<UInt8> = [
        0xA0, 0xA1, 0xA2, 0xA3, 0xC8, 0x90, 0x91, 0x92, 0x3D, 0xC4, 0x88, 0x89, 0x8A, 0x8B, 0xC2,
    ]

    init(_ stored: StoredSignature, number: Int) {
        label = "signature \(number) (\(DisplayText.escaping(stored.origin)))"
        switch stored {
        case .attachment(let payload, let mediaType, let annotations, _):
            form = .sigstore(payload: payload, mediaType: mediaType, annotations: annotations)
        case .blob(let bytes, _):
            form = Self.classify(bytes)
        }
    }

    /// containers/image's framing of signature blobs: binary OpenPGP, or `\0NAME\n` and a body.
    package static func classify(_ bytes: [UInt8]) -> Form {
        guard let first = bytes.first else { return .malformed(SignatureProblem("is empty")) }
        if openPGPStarts.contains(first) { return .simple(bytes) }
        guard first == 0, let newline = bytes.firstIndex(of: UInt8(ascii: "\n")), newline <= 64 else {
            return .malformed(
                SignatureProblem(
                    first == UInt8(ascii: "-")
                        ? "is ASCII-armored (signature files are binary OpenPGP)"
                        : "is in no signature format (it starts with byte 0x\(String(first, radix: 16)))"))
        }
        let name = String(decoding: bytes[1..<newline], as: UTF8.self)
        let body = Array(bytes[(newline + 1)...])
        switch name {
        case "simple-signing":
            return .simple(body)
        case "sigstore-json":
            guard case .object(let members)? = try? JSONValue(parsing: body, maxDepth: 8),
                case .string(let mimeType)? = members["mimeType"], case .string(let encoded)? = members["payload"],
                let payload = decodeBase64(encoded)
            else {
                return .malformed(SignatureProblem("is a sigstore-json signature that cannot be read"))
            }
            var annotations: [String: String] = [:]
            if case .object(let values)? = members["annotations"] {
                for (key, value) in values { if case .string(let text) = value { annotations[key] = text } }
            }
            return .sigstore(payload: payload, mediaType: mimeType, annotations: annotations)
        default:
            return .malformed(
                SignatureProblem("is in the unknown signature format \(DisplayText.escaping(name.truncatedForMessage))")
            )
        }
    }
}
