import FoundationEssentials
import Glibc
import Logging
import OCIImage
import Resolution
import Trust
import UnpackSystem

/// Which signature policy (`containers-policy.json(5)`) an unpack obeys, as podman and skopeo
/// find it, and where signatures are looked for (`containers-registries.d(5)`).
public struct SignaturePolicyOptions: Sendable, Equatable {
    /// Where the policy comes from.
    public enum Source: Sendable, Equatable {
        /// `$HOME/.config/containers/policy.json` when it exists, else
        /// `/etc/containers/policy.json`; when neither exists no policy is applied (unless
        /// ``SignaturePolicyOptions/required``).
        case system
        /// This file (`--policy FILE`).
        case file(String)
        /// None: every image is accepted (`--insecure-policy`).
        case insecureAcceptAnything
    }

    /// Where the policy comes from (``Source/system`` by default).
    public var source: Source
    /// A missing policy file is an error (`--require-policy`), for production nodes.
    public var required: Bool
    /// The registries.d directory (`--registries.d DIR`); `nil`: `$HOME/.config/containers/registries.d`
    /// when it exists, else `/etc/containers/registries.d`.
    public var registriesDirectory: String?
    /// `HOME`, for the user's files.
    public var environment: [String: String]
    /// Prefixed to `/etc/…` and `$HOME/…` (tests).
    package var systemRoot = ""

    /// Options that find the policy as `source` says, reading the user's files under `environment`'s `HOME`.
    public init(
        source: Source = .system, required: Bool = false, registriesDirectory: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.source = source
        self.required = required
        self.registriesDirectory = registriesDirectory
        self.environment = environment
    }
}

/// What a signature policy decided about an image, and why (`inspect` shows it).
public struct PolicyDecision: Sendable, Equatable, Encodable {
    /// The policy file; `nil` when no policy was applied.
    public let policy: String?
    /// Whether the image may be unpacked.
    public let accepted: Bool
    /// The list of requirements that applied: `default`, or `transports.docker["host/ns"]`.
    public let scope: String?
    /// Which requirement decided and how (the signature and key that satisfied it, or why the
    /// image is refused).
    public let reason: String

    /// One line: `accepted by POLICY, SCOPE: REASON`.
    public var summary: String {
        guard let policy else { return reason }
        // A refusal's reason starts with the requirement's place, which names the scope.
        return accepted ? "accepted by \(policy), \(scope ?? "default"): \(reason)" : "refused by \(policy): \(reason)"
    }
}

extension Unpacker {
    /// What the signature policy says of `image`, on its manifest digest, reading its
    /// signatures (registries.d's lookaside, sigstore attachments) but nothing of its layers. No
    /// policy file at all is an acceptance that says so (an error when `options.required`).
    public func policyDecision(for image: ResolvedImage, options: SignaturePolicyOptions) throws(UnpackError)
        -> PolicyDecision
    {
        let file: String
        switch options.source {
        case .insecureAcceptAnything:
            return PolicyDecision(
                policy: nil, accepted: true, scope: nil, reason: "no signature policy applied (--insecure-policy)")
        case .file(let path):
            file = path
        case .system:
            guard
                let found = SignaturePolicyCheck.locatePolicy(
                    explicit: nil, environment: options.environment, systemRoot: options.systemRoot)
            else {
                guard !options.required else {
                    throw UnpackError(
                        .policyRejected,
                        "no signature policy exists (\(options.environment["HOME"].map { "\($0)/.config/containers/policy.json, " } ?? "")/etc/containers/policy.json) and one is required (--require-policy)"
                    )
                }
                return PolicyDecision(
                    policy: nil, accepted: true, scope: nil,
                    reason: "no signature policy applied: no policy.json exists (--require-policy makes that an error)")
            }
            file = found
        }
        let policy = try SignaturePolicyCheck.readPolicy(file)
        let subject = try Self.policySubject(image)
        // registries.d is read only when a requirement needs a docker:// image's signatures.
        let check = SignaturePolicyCheck(policy: policy, environment: options.environment) {
            () throws(UnpackError) -> RegistriesD in
            try RegistriesD.load(
                explicit: options.registriesDirectory, environment: options.environment,
                systemRoot: options.systemRoot)
        }
        let verdict = try check.decide(subject, manifest: image.manifestDescriptor.digest, source: image.source)
        return PolicyDecision(policy: file, accepted: verdict.accepted, scope: verdict.scope, reason: verdict.reason)
    }

    /// Refuses, before any layer is fetched, an image the policy does not accept.
    func checkPolicy(_ image: ResolvedImage, options: SignaturePolicyOptions) throws(UnpackError) {
        let decision = try policyDecision(for: image, options: options)
        guard decision.accepted else {
            throw UnpackError(
                .policyRejected,
                "the signature policy \(decision.policy ?? "") refuses \(image.reference) (manifest \(image.manifestDescriptor.digest)): \(decision.reason)",
                context: .init(digest: image.manifestDescriptor.digest, path: decision.policy))
        }
        logger.info(
            "signature policy",
            metadata: ["manifest": "\(image.manifestDescriptor.digest)", "decision": "\(decision.summary)"])
    }

    /// The image as containers/image names it for its policy.
    static func policySubject(_ image: ResolvedImage) throws(UnpackError) -> PolicySubject {
        guard let reference = image.imageReference else {
            throw UnpackError(.internal, "\(image.reference) was resolved without its reference")
        }
        let display = reference.description
        switch reference.transport {
        case .registry:
            var tag: String?
            var digest: String?
            switch reference.selector {
            case .tag(let t): tag = t
            case .digest(let d): digest = d.description
            case .only: tag = "latest"
            }
            return .docker(
                DockerIdentity(name: "\(reference.registryHost)/\(reference.repository)", tag: tag, digest: digest),
                display: display)
        case .layout, .ociArchive:
            return .path(
                transport: reference.transport.rawValue,
                resolved: canonicalPath(reference.layoutPath) ?? reference.layoutPath,
                display: display)
        case .dockerArchive:
            return .dockerArchive(display: display)
        }
    }
}
