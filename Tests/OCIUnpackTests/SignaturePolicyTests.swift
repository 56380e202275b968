import Crypto
import Foundation
import OCIImage
import OCIUnpack
import OCIUnpackCLI
import Testing
import UnpackTestSupport

/// Signature policies (containers-policy.json) against real signatures: images pushed to Debian's
/// docker-registry on 127.0.0.1 and signed by Debian's `skopeo copy --sign-by` with GPG keys made
/// by the test, in a `file://` lookaside that registries.d names. Every decision is compared with
/// `skopeo copy --policy` given the same files (a differential test), and a refusal must leave
/// nothing behind.
@Suite(.serialized) struct SignaturePolicyTests {
    /// A GnuPG home with one new signing key.
    final class Keyring {
        let home: String
        let fingerprint: String
        let publicKey: String

        init(in directory: String, name: String) throws {
            home = directory + "/gnupg-" + name
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
            chmod(home, 0o700)
            let made = try Command.run(
                "gpg",
                [
                    "--batch", "--passphrase", "", "--quick-gen-key", "\(name) <\(name)@example.com>", "ed25519",
                    "sign", "never",
                ],
                environment: ["GNUPGHOME": home, "PATH": "/usr/bin:/bin"])
            try #require(made.status == 0, "gpg --quick-gen-key: \(made.stderr)")
            let listed = try Command.run(
                "gpg", ["--batch", "--with-colons", "--list-keys"], environment: ["GNUPGHOME": home])
            let print = listed.stdout.split(separator: "\n").first { $0.hasPrefix("fpr:") }?.split(
                separator: ":", omittingEmptySubsequences: false)[9]
            fingerprint = String(try #require(print))
            publicKey = directory + "/\(name).gpg"
            let exported = try Command.run(
                "sh", ["-c", "gpg --batch --export \(fingerprint) > \(publicKey)"], environment: ["GNUPGHOME": home])
            try #require(exported.status == 0, "gpg --export: \(exported.stderr)")
        }

        deinit {
            _ = try? Command.run("gpgconf", ["--kill", "all"], environment: ["GNUPGHOME": home])
        }
    }

    /// The registry, the keys, the signed and unsigned images, and the registries.d naming the lookaside.
    final class Site {
        let example: RegistryTests.Example
        let registry: TestRegistry
        let signer: Keyring
        let stranger: Keyring
        var tmp: String { example.tmp.path }
        var registriesD: String { tmp + "/registries.d" }
        var lookaside: String { tmp + "/lookaside" }
        var host: String { registry.host }

        init() throws {
            example = try RegistryTests.Example()
            registry = try TestRegistry(.plain)
            signer = try Keyring(in: example.tmp.path, name: "signer")
            stranger = try Keyring(in: example.tmp.path, name: "stranger")
            try FileManager.default.createDirectory(
                atPath: example.tmp.path + "/registries.d", withIntermediateDirectories: true)
            // Debian's skopeo 1.9.3 writes to `sigstore-staging` (the older spelling); both read `sigstore`.
            try """
            # where the test's signatures are kept
            docker:
              \(registry.host):
                sigstore: file://\(example.tmp.path)/lookaside
                sigstore-staging: file://\(example.tmp.path)/lookaside

            """.write(toFile: registriesD + "/test.yaml", atomically: true, encoding: .utf8)
            try push("ex/app:v1", signed: true)
            try push("ex/other:v1", signed: true, extra: ["--format", "v2s2"])
            try push("ex/unsigned:v1", signed: false)
            try push("ex/tampered:v1", signed: true)
            try push("ex/wrongdigest:v1", signed: false)
            // A byte of the signature packet flipped: no longer a good signature.
            let tampered = try signatureFile(of: "ex/tampered")
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: tampered)))
            bytes[bytes.count - 3] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: tampered))
            // ex/other's (good) signature, for ex/wrongdigest's manifest.
            let other = try signatureFile(of: "ex/other")
            let wrong = try lookasideDirectory(of: "ex/wrongdigest", digest: manifestDigest("ex/wrongdigest:v1"))
            try FileManager.default.createDirectory(atPath: wrong, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: other, toPath: wrong + "/signature-1")
        }

        /// The host platform's image of the example (skopeo copies one instance without --all).
        func push(_ name: String, signed: Bool, extra: [String] = []) throws {
            var arguments = ["copy", "--quiet", "--dest-tls-verify=false", "--registries.d", registriesD] + extra
            if signed { arguments += ["--sign-by", signer.fingerprint] }
            let copy = try Command.run(
                "skopeo", arguments + ["oci:\(example.layout):latest", "docker://\(host)/\(name)"],
                environment: ["GNUPGHOME": signer.home, "PATH": "/usr/bin:/bin", "HOME": tmp])
            try #require(copy.status == 0, "skopeo copy --sign-by to \(name): \(copy.stderr)")
        }

        func manifestDigest(_ name: String) throws -> String {
            let r = try Command.run(
                "skopeo", ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://\(host)/\(name)"],
                environment: ["HOME": tmp, "PATH": "/usr/bin:/bin"])
            try #require(r.status == 0, "skopeo inspect: \(r.stderr)")
            return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func lookasideDirectory(of repository: String, digest: String) throws -> String {
            "\(lookaside)/\(repository)@\(digest.replacingOccurrences(of: ":", with: "="))"
        }

        func signatureFile(of repository: String) throws -> String {
            let base = try FileManager.default.contentsOfDirectory(atPath: lookaside + "/ex").first {
                $0.hasPrefix(repository.split(separator: "/").last.map { $0 + "@" } ?? repository)
            }
            return lookaside + "/ex/" + (try #require(base)) + "/signature-1"
        }

        func policy(_ name: String, _ json: String) throws -> String {
            let path = tmp + "/\(name).json"
            try json.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        /// skopeo's decision: 0 (accepted) or 1 with "Source image rejected" (refused by the
        /// policy); anything else fails the test, which must compare decisions, not other errors.
        func skopeoAccepts(_ policy: String, _ source: String) throws -> Bool {
            let out = tmp + "/skopeo-out-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: out) }
            let r = try Command.run(
                "skopeo",
                [
                    "copy", "--quiet", "--policy", policy, "--registries.d", registriesD, "--src-tls-verify=false",
                    source, "dir:\(out)",
                ], environment: ["HOME": tmp, "PATH": "/usr/bin:/bin"])
            if r.status == 0 { return true }
            try #require(r.stderr.contains("Source image rejected"), "skopeo failed otherwise: \(r.stderr)")
            return false
        }

        /// oci-unpack's decision: 0, or 90 (policyRejected) with no bundle and no staging
        /// directory left; the message is returned.
        func ociUnpackAccepts(_ policy: String, _ source: String) throws -> (Bool, String) {
            let bundle = tmp + "/bundle-\(UUID().uuidString)"
            let r = try Command.run(
                Command.ociUnpack,
                [
                    "unpack", "--platform", "linux/amd64", "--policy", policy, "--registries.d", registriesD,
                    "--tls-verify=false", "--retry-times", "0", source, bundle,
                ])
            if r.status == 0 {
                try? FileManager.default.removeItem(atPath: bundle)
                return (true, r.stderr)
            }
            #expect(r.status == 90, "\(source) under \(policy): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: bundle))
            let left = try FileManager.default.contentsOfDirectory(atPath: tmp).filter { $0.hasPrefix(".bundle-") }
            #expect(left.isEmpty, "left behind: \(left)")
            return (false, r.stderr)
        }
    }

    static func signedBy(_ key: String, identity: String = "") -> String {
        #"{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "\#(key)"\#(identity)}"#
    }

    @Test(.timeLimit(.minutes(5))) func decisionsEqualSkopeos() throws {
        let site = try Site()
        let host = site.host
        let right = site.signer.publicKey
        let keyData = try Data(contentsOf: URL(fileURLWithPath: right)).base64EncodedString()
        func scoped(
            _ requirement: String, scope: String = "\(host)/ex", default fallback: String = #"{"type": "reject"}"#
        )
            -> String
        {
            #"{"default": [\#(fallback)], "transports": {"docker": {"\#(scope)": [\#(requirement)]}}}"#
        }
        // (case, policy, image, expected decision)
        let cases: [(String, String, String, Bool)] = [
            ("signed by the right key", scoped(Self.signedBy(right)), "ex/app:v1", true),
            (
                "the key inline (keyData)",
                scoped(#"{"type": "signedBy", "keyType": "GPGKeys", "keyData": "\#(keyData)"}"#), "ex/app:v1", true
            ),
            ("signed by another key", scoped(Self.signedBy(site.stranger.publicKey)), "ex/app:v1", false),
            ("unsigned", scoped(Self.signedBy(right)), "ex/unsigned:v1", false),
            ("a signature for another digest", scoped(Self.signedBy(right)), "ex/wrongdigest:v1", false),
            ("a tampered signature", scoped(Self.signedBy(right)), "ex/tampered:v1", false),
            (
                "an identity mismatch",
                scoped(
                    Self.signedBy(
                        right,
                        identity:
                            #", "signedIdentity": {"type": "exactReference", "dockerReference": "\#(host)/ex/app:other"}"#
                    )),
                "ex/app:v1", false
            ),
            (
                "matchRepository over another repository's signature",
                scoped(Self.signedBy(right, identity: #", "signedIdentity": {"type": "matchRepository"}"#)),
                "ex/wrongdigest:v1", false
            ),
            ("reject", #"{"default": [{"type": "reject"}]}"#, "ex/app:v1", false),
            ("insecureAcceptAnything", #"{"default": [{"type": "insecureAcceptAnything"}]}"#, "ex/unsigned:v1", true),
            (
                "a scope overriding the default",
                scoped(#"{"type": "insecureAcceptAnything"}"#, scope: "\(host)/ex/unsigned"), "ex/unsigned:v1", true
            ),
            (
                "the default outside the scope",
                scoped(#"{"type": "insecureAcceptAnything"}"#, scope: "\(host)/ex/unsigned"), "ex/app:v1", false
            ),
            ("a host scope", scoped(Self.signedBy(right), scope: host), "ex/app:v1", true),
            (
                "a wildcard scope", scoped(#"{"type": "insecureAcceptAnything"}"#, scope: "*.0.1"), "ex/unsigned:v1",
                true
            ),
            (
                "a scope more specific than a rejecting one",
                #"{"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": {"\#(host)": [{"type": "reject"}], "\#(host)/ex/app:v1": [\#(Self.signedBy(right))]}}}"#,
                "ex/app:v1", true
            ),
            (
                "all requirements must accept", scoped(Self.signedBy(right) + #", {"type": "reject"}"#), "ex/app:v1",
                false
            ),
        ]
        for (n, (name, json, image, expected)) in cases.enumerated() {
            let policy = try site.policy("policy-\(n)", json)
            let source = "docker://\(host)/\(image)"
            let skopeo = try site.skopeoAccepts(policy, source)
            let (ours, message) = try site.ociUnpackAccepts(policy, source)
            #expect(
                ours == skopeo,
                "\(name): oci-unpack \(ours ? "accepts" : "refuses"), skopeo \(skopeo ? "accepts" : "refuses"): \(message)"
            )
            #expect(ours == expected, "\(name): \(message)")
        }
    }

    @Test(.timeLimit(.minutes(3))) func refusalsNameTheRuleAndWhy() throws {
        let site = try Site()
        let host = site.host
        let policy = try site.policy(
            "named",
            #"{"default": [{"type": "reject"}], "transports": {"docker": {"\#(host)/ex": [\#(Self.signedBy(site.signer.publicKey))]}}}"#
        )
        let (_, unsigned) = try site.ociUnpackAccepts(policy, "docker://\(host)/ex/unsigned:v1")
        #expect(
            unsigned.contains(
                #"refuses docker://\#(host)/ex/unsigned:v1 (manifest sha256:"#)
                && unsigned.contains(
                    #"transports.docker["\#(host)/ex"][0] signedBy: a signature was required, but no signature exists"#),
            "\(unsigned)")
        let (_, stranger) = try site.ociUnpackAccepts(
            try site.policy("stranger", #"{"default": [\#(Self.signedBy(site.stranger.publicKey))]}"#),
            "docker://\(host)/ex/app:v1")
        #expect(stranger.contains("default[0] signedBy: no signature is accepted: signature 1 (file://"), "\(stranger)")
        #expect(stranger.contains("is signed by key \(site.signer.fingerprint), which is not trusted"), "\(stranger)")
        let (_, wrong) = try site.ociUnpackAccepts(policy, "docker://\(host)/ex/wrongdigest:v1")
        #expect(wrong.contains("is for manifest sha256:"), "\(wrong)")

        // inspect shows the decision without refusing to show the image.
        let inspect = try Command.run(
            Command.ociUnpack,
            [
                "inspect", "--platform", "linux/amd64", "--policy", policy, "--registries.d", site.registriesD,
                "--tls-verify=false", "docker://\(host)/ex/app:v1",
            ])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(
            inspect.stdout.contains(
                #"policy:     accepted by \#(policy), transports.docker["\#(host)/ex"]: signedBy: signature 1 (file://"#
            )
                && inspect.stdout.contains("by key \(site.signer.fingerprint)"), "\(inspect.stdout)")
        let json = try Command.run(
            Command.ociUnpack,
            [
                "inspect", "--json", "--platform", "linux/amd64", "--policy", policy, "--registries.d",
                site.registriesD, "--tls-verify=false", "docker://\(host)/ex/unsigned:v1",
            ])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let decision = try #require(object["policy"] as? [String: Any])
        #expect(decision["accepted"] as? Bool == false)
        #expect(decision["policy"] as? String == policy)
        #expect(decision["scope"] as? String == #"transports.docker["\#(host)/ex"]"#)
    }

    /// The same signatures from an `http://` lookaside (Python's http.server over the lookaside
    /// directory, on 127.0.0.1): skopeo and oci-unpack agree, and a missing one is a 404 that ends the list.
    @Test(.timeLimit(.minutes(3))) func anHTTPLookaside() throws {
        let site = try Site()
        let port = try TestRegistry.freePort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = ["-m", "http.server", "\(port)", "--bind", "127.0.0.1", "--directory", site.lookaside]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            // SIGKILL: the test runner's children may inherit SIGTERM ignored.
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        for _ in 0..<100 {
            if (try? Command.run("curl", ["-sf", "-o", "/dev/null", "http://127.0.0.1:\(port)/"]))?.status == 0 {
                break
            }
            usleep(50_000)
        }
        try """
        docker:
          \(site.host):
            lookaside: http://127.0.0.1:\(port)

        """.write(toFile: site.registriesD + "/test.yaml", atomically: true, encoding: .utf8)
        let policy = try site.policy("http", #"{"default": [\#(Self.signedBy(site.signer.publicKey))]}"#)
        for (image, expected) in [("ex/app:v1", true), ("ex/unsigned:v1", false), ("ex/tampered:v1", false)] {
            let source = "docker://\(site.host)/\(image)"
            let (ours, message) = try site.ociUnpackAccepts(policy, source)
            #expect(ours == expected, "\(image): \(message)")
            #expect(try site.skopeoAccepts(policy, source) == ours, "\(image)")
            if ours { #expect(!message.contains("error"), "\(message)") }
        }
        let inspect = try Command.run(
            Command.ociUnpack,
            [
                "inspect", "--platform", "linux/amd64", "--policy", policy, "--registries.d", site.registriesD,
                "--tls-verify=false", "docker://\(site.host)/ex/app:v1",
            ])
        #expect(inspect.stdout.contains("signature 1 (http://127.0.0.1:\(port)/ex/app@sha256="), "\(inspect.stdout)")
    }

    /// Sigstore signatures as registry attachments (`sha256-HEX.sig`), made by the test with
    /// swift-crypto: Debian's skopeo 1.9.3 is built with sigstore disabled, so these cases are
    /// checked against expected decisions only.
    @Test(.timeLimit(.minutes(3))) func sigstoreAttachments() throws {
        let site = try Site()
        let host = site.host
        let key = P256.Signing.PrivateKey()
        let other = P256.Signing.PrivateKey()
        let keyFile = site.tmp + "/cosign.pub"
        try key.publicKey.pemRepresentation.write(toFile: keyFile, atomically: true, encoding: .utf8)
        let digest = try site.manifestDigest("ex/unsigned:v1")
        let payload = Array(
            #"{"critical":{"identity":{"docker-reference":"\#(host)/ex/unsigned"},"image":{"docker-manifest-digest":"\#(digest)"},"type":"cosign container image signature"},"optional":null}"#
                .utf8)
        try Self.attach(
            [(payload, try key.signature(for: payload).derRepresentation)], to: "ex/unsigned", digest: digest,
            site: site)
        try """
        docker:
          \(host):
            use-sigstore-attachments: true

        """.write(toFile: site.registriesD + "/test.yaml", atomically: true, encoding: .utf8)
        let repository = #", "signedIdentity": {"type": "matchRepository"}"#
        let accepting = try site.policy(
            "sigstore", #"{"default": [{"type": "sigstoreSigned", "keyPath": "\#(keyFile)"\#(repository)}]}"#)
        #expect(try site.ociUnpackAccepts(accepting, "docker://\(host)/ex/unsigned:v1").0)
        // The default identity rule needs a tag or digest in the claim: cosign's claims name only the repository.
        let strict = try site.policy(
            "sigstore-default", #"{"default": [{"type": "sigstoreSigned", "keyPath": "\#(keyFile)"}]}"#)
        let (strictAccepted, strictMessage) = try site.ociUnpackAccepts(strict, "docker://\(host)/ex/unsigned:v1")
        #expect(!strictAccepted)
        #expect(strictMessage.contains("matchRepoDigestOrExact"), "\(strictMessage)")

        let otherFile = site.tmp + "/other.pub"
        try other.publicKey.pemRepresentation.write(toFile: otherFile, atomically: true, encoding: .utf8)
        let (otherAccepted, otherMessage) = try site.ociUnpackAccepts(
            try site.policy(
                "sigstore-other",
                #"{"default": [{"type": "sigstoreSigned", "keyPath": "\#(otherFile)"\#(repository)}]}"#),
            "docker://\(host)/ex/unsigned:v1")
        #expect(!otherAccepted)
        #expect(otherMessage.contains("is not signed by any of the keys"), "\(otherMessage)")

        // A payload changed after signing.
        var altered = payload
        altered[altered.count - 3] = UInt8(ascii: "x")
        try Self.attach(
            [(altered, try key.signature(for: payload).derRepresentation)], to: "ex/unsigned", digest: digest,
            site: site)
        #expect(try !site.ociUnpackAccepts(accepting, "docker://\(host)/ex/unsigned:v1").0)

        // Fulcio is refused as unsupported, by name.
        let fulcio = try site.policy(
            "fulcio",
            #"{"default": [{"type": "sigstoreSigned", "fulcio": {"caPath": "/x", "oidcIssuer": "https://x", "subjectEmail": "a@b"}, "rekorPublicKeyPath": "/y"}]}"#
        )
        let (_, fulcioMessage) = try site.ociUnpackAccepts(fulcio, "docker://\(host)/ex/unsigned:v1")
        #expect(fulcioMessage.contains("Fulcio certificates are not supported by oci-unpack"), "\(fulcioMessage)")
    }

    /// Pushes a cosign signature manifest (one layer per payload, its DER signature in the
    /// annotation) tagged `sha256-HEX.sig`, through the registry's API with curl.
    static func attach(_ signatures: [([UInt8], Data)], to repository: String, digest: String, site: Site) throws {
        func upload(_ bytes: [UInt8]) throws -> String {
            let blobDigest = "sha256:" + SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
            let file = site.tmp + "/blob-\(UUID().uuidString)"
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            let r = try Command.run(
                "sh",
                [
                    "-c",
                    """
                    set -e
                    loc=$(curl -sf -D - -o /dev/null -X POST http://\(site.host)/v2/\(repository)/blobs/uploads/ | tr -d '\\r' | sed -n 's/^[Ll]ocation: //p')
                    case "$loc" in http*) ;; *) loc="http://\(site.host)$loc";; esac
                    sep='?'; case "$loc" in *\\?*) sep='&';; esac
                    curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary @\(file) "$loc${sep}digest=\(blobDigest)"
                    """,
                ])
            try #require(r.status == 0, "blob upload: \(r.stderr)")
            return blobDigest
        }
        let config = Array("{}".utf8)
        let configDigest = try upload(config)
        var layers: [String] = []
        for (payload, signature) in signatures {
            let layerDigest = try upload(payload)
            layers.append(
                #"{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":\#(payload.count),"digest":"\#(layerDigest)","annotations":{"dev.cosignproject.cosign/signature":"\#(signature.base64EncodedString())"}}"#
            )
        }
        let manifest =
            #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":\#(config.count),"digest":"\#(configDigest)"},"layers":[\#(layers.joined(separator: ","))]}"#
        let file = site.tmp + "/sig-manifest.json"
        try manifest.write(toFile: file, atomically: true, encoding: .utf8)
        let tag = digest.replacingOccurrences(of: ":", with: "-") + ".sig"
        let r = try Command.run(
            "curl",
            [
                "-sf", "-X", "PUT", "-H", "Content-Type: application/vnd.oci.image.manifest.v1+json", "--data-binary",
                "@\(file)", "http://\(site.host)/v2/\(repository)/manifests/\(tag)",
            ])
        try #require(r.status == 0, "manifest upload: \(r.stderr)")
    }

    /// Layouts have no signatures (as in containers/image): signedBy refuses them, and an `oci`
    /// scope (the layout's resolved path, or a parent directory) picks their rule, as skopeo's.
    @Test(.timeLimit(.minutes(2))) func layoutsHaveScopesAndNoSignatures() throws {
        let example = try RegistryTests.Example()
        let tmp = example.tmp.path
        let resolved = URL(fileURLWithPath: example.layout).resolvingSymlinksInPath().path
        let parent = (resolved as NSString).deletingLastPathComponent
        let cases: [(String, Bool)] = [
            (#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/nonexistent.gpg"}]}"#, false),
            (
                #"{"default": [{"type": "reject"}], "transports": {"oci": {"\#(parent)": [{"type": "insecureAcceptAnything"}]}}}"#,
                true
            ),
            (
                #"{"default": [{"type": "insecureAcceptAnything"}], "transports": {"oci": {"\#(resolved)": [{"type": "reject"}]}}}"#,
                false
            ),
            (
                #"{"default": [{"type": "reject"}], "transports": {"oci": {"": [{"type": "insecureAcceptAnything"}]}}}"#,
                true
            ),
        ]
        for (n, (json, expected)) in cases.enumerated() {
            let policy = tmp + "/policy-\(n).json"
            try json.write(toFile: policy, atomically: true, encoding: .utf8)
            let out = tmp + "/out-\(n)"
            let skopeo = try Command.run(
                "skopeo", ["copy", "--quiet", "--policy", policy, "oci:\(example.layout):latest", "dir:\(out)"],
                environment: ["HOME": tmp, "PATH": "/usr/bin:/bin"])
            #expect((skopeo.status == 0) == expected, "skopeo under \(json): \(skopeo.stderr)")
            let bundle = tmp + "/bundle-\(n)"
            let ours = try Command.run(
                Command.ociUnpack,
                ["unpack", "--platform", "linux/amd64", "--policy", policy, "oci:\(example.layout):latest", bundle])
            #expect(ours.status == (expected ? 0 : 90), "\(json): \(ours.stderr)")
            #expect(FileManager.default.fileExists(atPath: bundle) == expected)
        }
    }

    /// No policy file at all: unpacks go on, and the decision says none was applied; with
    /// `required` that is a refusal. A malformed policy is refused with its file and place.
    @Test func noPolicyAndBadPolicies() throws {
        let example = try RegistryTests.Example()
        let unpacker = Unpacker()
        let image = try unpacker.resolve(
            "oci:\(example.layout):latest", request: ResolutionRequest(platform: RegistryTests.amd64))
        var options = SignaturePolicyOptions(environment: ["HOME": "/nonexistent-home"])
        options.systemRoot = example.tmp.path + "/empty-root"
        let decision = try unpacker.policyDecision(for: image, options: options)
        #expect(decision.accepted && decision.policy == nil)
        #expect(decision.reason.contains("no signature policy applied"))
        options.required = true
        #expect {
            try unpacker.policyDecision(for: image, options: options)
        } throws: { ($0 as? UnpackError)?.code == .policyRejected }

        let bad = example.tmp.path + "/bad.json"
        try #"{"default": [{"type": "reject"}], "transports": {"docker": {"x": []}}}"#.write(
            toFile: bad, atomically: true, encoding: .utf8)
        let r = try Command.run(
            Command.ociUnpack,
            [
                "unpack", "--platform", "linux/amd64", "--policy", bad, "oci:\(example.layout):latest",
                example.tmp.path + "/b",
            ])
        #expect(r.status == 64)
        #expect(
            r.stderr.contains(#"policy \#(bad): transports.docker["x"] is an empty list of requirements"#),
            "\(r.stderr)")
        let both = try Command.run(
            Command.ociUnpack,
            ["unpack", "--insecure-policy", "--policy", bad, "oci:\(example.layout):latest", example.tmp.path + "/b"])
        #expect(both.status == 64, "\(both.stderr)")
    }
}
