import FoundationEssentials
import OCIImage

/// A loaded policy and the registries.d configuration it reads signatures through: what an
/// unpack checks an image against, on its manifest digest, before any layer is fetched.
package struct SignaturePolicyCheck: Sendable {
    package let policy: Policy
    package let environment: [String: String]
    /// Reads the registries.d configuration: only when a `docker://` image's signatures are needed.
    let registriesD: @Sendable () throws(UnpackError) -> RegistriesD

    package init(
        policy: Policy, environment: [String: String],
        registriesD: @escaping @Sendable () throws(UnpackError) -> RegistriesD
    ) {
        self.policy = policy
        self.environment = environment
        self.registriesD = registriesD
    }

    /// The policy file containers/image would read: `explicit` (`--policy`), else
    /// `$HOME/.config/containers/policy.json` when it exists, else `/etc/containers/policy.json`
    /// when it exists; `nil` when there is none (under `systemRoot`, for tests).
    package static func locatePolicy(explicit: String?, environment: [String: String], systemRoot: String = "")
        -> String?
    {
        if let explicit { return explicit }
        if let home = environment["HOME"], !home.isEmpty {
            let user = systemRoot + home + "/.config/containers/policy.json"
            if FileManager.default.fileExists(atPath: user) { return user }
        }
        let system = systemRoot + "/etc/containers/policy.json"
        return FileManager.default.fileExists(atPath: system) ? system : nil
    }

    /// Reads the policy at `file`.
    package static func readPolicy(_ file: String) throws(UnpackError) -> Policy {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw UnpackError(.notFound, "the policy \(file) cannot be read", context: .init(path: file))
        }
        guard data.count <= 4 << 20 else {
            throw UnpackError(.limitExceeded, "the policy \(file) is larger than 4 MiB", context: .init(path: file))
        }
        return try Policy(parsing: Array(data), file: file)
    }

    /// The decision on `subject` (manifest `manifest`), its signatures read from registries.d's
    /// lookaside and, when enabled, the sigstore attachments `source` holds.
    package func decide(_ subject: PolicySubject, manifest: Digest, source: any ImageSource) throws(UnpackError)
        -> PolicyVerdict
    {
        try policy.evaluate(subject, manifest: manifest) { () throws(UnpackError) -> [StoredSignature] in
            try signatures(of: subject, manifest: manifest, source: source)
        }
    }

    /// Only `docker://` images have signatures (as in containers/image: layouts and archives
    /// keep none).
    func signatures(of subject: PolicySubject, manifest: Digest, source: any ImageSource) throws(UnpackError)
        -> [StoredSignature]
    {
        guard subject.transport == "docker", let reference = subject.dockerReference else { return [] }
        let registriesD = try self.registriesD()
        let base = registriesD.lookaside(for: subject, environment: environment)
        let repositoryBase = (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/" + reference.path
        var request = SignatureRequest(manifest: manifest, attachments: registriesD.usesAttachments(for: subject))
        var found: [StoredSignature] = []
        if base.hasPrefix("file://") {
            found = try lookasideFiles(base: repositoryBase, request: request)
        } else {
            request.lookaside = repositoryBase
        }
        if request.lookaside != nil || request.attachments {
            request.maxSignatures -= found.count
            found += try source.signatures(request)
        }
        return found
    }
}
