import Foundation
import OCIImage
import Testing
import Trust

/// policy.json as containers/image reads it: strictness, scopes, and the identity rules.
@Suite struct PolicyTests {
    func parse(_ text: String) throws(UnpackError) -> Policy {
        try Policy(parsing: Array(text.utf8), file: "p.json")
    }

    func message(_ text: String) -> String? {
        do throws(UnpackError) {
            _ = try parse(text)
            return nil
        } catch {
            #expect(error.code == .invalidArgument)
            return error.message
        }
    }

    @Test func malformedPoliciesNameTheFileAndPlace() {
        #expect(
            message("{\"default\": [{\"type\": \"reject\"}],\n \"default\": []}")?.hasPrefix("policy p.json:2:") == true
        )
        #expect(message(#"{"transports": {}}"#) == #"policy p.json: the top level has no "default" requirements"#)
        #expect(
            message(#"{"default": []}"#)?.hasPrefix("policy p.json: default is an empty list of requirements") == true)
        #expect(
            message(#"{"default": [{"type": "reject"}], "Transports": {}}"#)
                == #"policy p.json: the top level has an unknown key "Transports""#)
        #expect(
            message(#"{"default": [{"type": "reject", "x": 1}]}"#)
                == #"policy p.json: default[0] has an unknown key "x""#)
        #expect(
            message(#"{"default": [{"type": "accept"}]}"#)?.hasPrefix(
                #"policy p.json: default[0] has an unknown requirement type "accept""#) == true)
        #expect(
            message(#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/a", "keyData": "AA=="}]}"#)
                == "policy p.json: default[0] must have exactly one of keyPath, keyPaths, keyData (keyPath, keyData present)"
        )
        #expect(
            message(#"{"default": [{"type": "signedBy", "keyPath": "/a"}]}"#)
                == "policy p.json: default[0].keyType is missing (GPGKeys)")
        #expect(
            message(
                #"{"default": [{"type": "reject"}], "transports": {"oci": {"relative/dir": [{"type": "reject"}]}}}"#)?
                .hasPrefix(#"policy p.json: transports.oci["relative/dir"] is not a scope of oci"#) == true)
        #expect(
            message(
                #"{"default": [{"type": "reject"}], "transports": {"docker-archive": {"/a": [{"type": "reject"}]}}}"#)?
                .contains("supports only the default scope") == true)
        #expect(
            message(
                #"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/a", "signedIdentity": {"type": "exactReference", "dockerReference": "busybox"}}]}"#
            )?
            .contains("has neither a tag nor a digest") == true)
        // Transports oci-unpack does not know are kept, unchecked, as containers/image keeps them.
        #expect(
            message(
                #"{"default": [{"type": "reject"}], "transports": {"atomic-future": {"any thing": [{"type": "reject"}]}}}"#
            ) == nil)
    }

    @Test func theMostSpecificScopeApplies() throws {
        let policy = try parse(
            #"""
            {"default": [{"type": "reject"}],
             "transports": {"docker": {
                "reg.example.com:5000/a/b:t": [{"type": "insecureAcceptAnything"}],
                "reg.example.com:5000/a": [{"type": "reject"}],
                "*.example.com": [{"type": "reject"}],
                "": [{"type": "reject"}]}}}
            """#)
        func scope(_ text: String) -> String {
            policy.requirements(for: .docker(DockerIdentity.parse(text)!, display: text)).scope
        }
        #expect(scope("reg.example.com:5000/a/b:t") == #"transports.docker["reg.example.com:5000/a/b:t"]"#)
        #expect(scope("reg.example.com:5000/a/b:u") == #"transports.docker["reg.example.com:5000/a"]"#)
        #expect(scope("reg.example.com:5000/x") == #"transports.docker["*.example.com"]"#)
        #expect(scope("example.com/x:1") == #"transports.docker[""]"#)
        let subject = PolicySubject.docker(DockerIdentity.parse("reg.example.com:5000/a/b:t")!, display: "")
        #expect(
            subject.namespaces == [
                "reg.example.com:5000/a/b", "reg.example.com:5000/a", "reg.example.com:5000", "*.example.com", "*.com",
            ])
        #expect(
            PolicySubject.path(transport: "oci", resolved: "/a/b/c", display: "").namespaces == [
                "/a/b/c", "/a/b", "/a",
            ])
    }

    @Test func identityRulesAreContainersImages() throws {
        func id(_ text: String) -> DockerIdentity { DockerIdentity.parse(text)! }
        let tagged = id("example.com/ns/app:v1")
        let byDigest = id("example.com/ns/app@sha256:" + String(repeating: "a", count: 64))
        #expect(Policy.matches(.matchRepoDigestOrExact, intended: tagged, signed: id("example.com/ns/app:v1")))
        #expect(!Policy.matches(.matchRepoDigestOrExact, intended: tagged, signed: id("example.com/ns/app:v2")))
        #expect(Policy.matches(.matchRepoDigestOrExact, intended: byDigest, signed: id("example.com/ns/app:v2")))
        #expect(!Policy.matches(.matchRepoDigestOrExact, intended: byDigest, signed: id("example.com/ns/app")))
        #expect(!Policy.matches(.matchExact, intended: byDigest, signed: id("example.com/ns/app:v1")))
        #expect(Policy.matches(.matchRepository, intended: tagged, signed: id("example.com/ns/app")))
        #expect(
            Policy.matches(
                .exactRepository(id("example.com/ns/app")), intended: nil, signed: id("example.com/ns/app:x")))
        #expect(
            Policy.matches(
                .matchRepoDigestOrExact, intended: id("docker.io/library/busybox:1"), signed: id("busybox:1")))
        let remap = Policy.IdentityRule.remapIdentity(prefix: "mirror.example/ns", signedPrefix: "example.com/ns")
        #expect(Policy.matches(remap, intended: id("mirror.example/ns/app:v1"), signed: tagged))
        #expect(!Policy.matches(remap, intended: id("mirror.example/nsx/app:v1"), signed: tagged))
        // Without a docker reference (a layout), only the rules that ignore the image can accept.
        #expect(!Policy.matches(.matchRepository, intended: nil, signed: tagged))
    }

    @Test func signaturePayloadsAreReadStrictly() {
        let digest = "sha256:" + String(repeating: "b", count: 64)
        let good =
            #"{"critical":{"identity":{"docker-reference":"a.example/b:c"},"image":{"docker-manifest-digest":"\#(digest)"},"type":"atomic container signature"},"optional":{}}"#
        #expect(
            (try? SignedClaims.simpleSigning(Array(good.utf8)).get())
                == SignedClaims(manifestDigest: digest, dockerReference: "a.example/b:c"))
        let extra = good.replacingOccurrences(of: #""type":"atomic"#, with: #""x":1,"type":"atomic"#)
        #expect((try? SignedClaims.simpleSigning(Array(extra.utf8)).get()) == nil)
        let repeated = good.replacingOccurrences(of: #""optional":{}"#, with: #""optional":{},"optional":{}"#)
        #expect((try? SignedClaims.simpleSigning(Array(repeated.utf8)).get()) == nil)
        // cosign's `"optional": null` is a sigstore payload's, not a simple signature's.
        let cosign = good.replacingOccurrences(
            of: "atomic container signature", with: "cosign container image signature"
        )
        .replacingOccurrences(of: #""optional":{}"#, with: #""optional":null"#)
        #expect((try? SignedClaims.sigstore(Array(cosign.utf8)).get()) != nil)
        #expect((try? SignedClaims.simpleSigning(Array(cosign.utf8)).get()) == nil)
        if case .malformed(let problem) = ParsedSignature.classify(Array("-----BEGIN PGP".utf8)).self {
            #expect(problem.description.contains("ASCII-armored"))
        } else {
            Issue.record("an armored signature was taken")
        }
    }
}

/// registries.d: the YAML subset and the lookaside lookup.
@Suite struct RegistriesDTests {
    func problem(_ text: String) -> String? {
        var conf = RegistriesD()
        do throws(UnpackError) {
            try conf.merge(text: text, file: "a.yaml")
            return nil
        } catch {
            return error.message
        }
    }

    @Test func unsupportedYAMLIsRefusedWithItsLine() {
        #expect(
            problem("docker:\n  x:\n\t lookaside: file:///a\n")
                == "registries.d a.yaml:3: a tab in indentation (YAML indents with spaces)")
        #expect(problem("docker:\n  - a\n")?.hasPrefix("registries.d a.yaml:2: a sequence is not supported") == true)
        #expect(
            problem("docker: {a: b}\n")?.hasPrefix("registries.d a.yaml:1: a flow mapping is not supported") == true)
        #expect(
            problem("docker:\n  x:\n    lookaside: a\n    lookaside: b\n")
                == #"registries.d a.yaml:4: key "lookaside" is already defined in this mapping"#)
        #expect(
            problem("docker:\n  x:\n    lookasid: file:///a\n")?.hasPrefix(
                #"registries.d a.yaml:3: unknown key "lookasid""#) == true)
        #expect(
            problem("docker:\n  x:\n    lookaside: /var/sigs\n")?.contains("is not a file://, http:// or https:// URL")
                == true)
        #expect(problem("---\n# only comments\ndefault-docker:\n  sigstore: 'file:///a' # old spelling\n") == nil)
    }

    @Test func sectionsFallThroughAndFilesMayNotRedefine() throws {
        var conf = RegistriesD()
        try conf.merge(
            text: """
                default-docker:
                  lookaside: https://sigs.example/default
                docker:
                  example.com/ns:
                    use-sigstore-attachments: true
                  example.com:
                    sigstore: "file:///srv/sigs"
                """, file: "a.yaml")
        let subject = PolicySubject.docker(DockerIdentity.parse("example.com/ns/app:v1")!, display: "")
        // The most specific section names no lookaside: the next one that does is used.
        #expect(conf.lookaside(for: subject, environment: [:]) == "file:///srv/sigs")
        #expect(conf.usesAttachments(for: subject))
        let elsewhere = PolicySubject.docker(DockerIdentity.parse("other.example/app:v1")!, display: "")
        #expect(conf.lookaside(for: elsewhere, environment: [:]) == "https://sigs.example/default")
        #expect(!conf.usesAttachments(for: elsewhere))
        do throws(UnpackError) {
            try conf.merge(text: "default-docker:\n  lookaside: file:///b\n", file: "b.yaml")
            Issue.record("a second default-docker was taken")
        } catch {
            #expect(error.message == "registries.d b.yaml:1: default-docker is defined both here and in a.yaml:1")
        }
    }
}
