import Foundation
import Glibc
import OCIImage
import OCIUnpackCLI
import Registries
import Testing
import UnpackTestSupport

/// The edges of the registry client: where credentials and plain HTTP may go, and how long a
/// registry may take. Each test names the hole it closes.
@Suite(.serialized) struct RegistryEdgeTests {
    static let password = "edge-Pa55word"

    /// A TLS registry with basic auth and the example pushed to it, behind a TLS fault proxy.
    final class TLSFront {
        let registry: TestRegistry
        let example: RegistryTests.Example

        init() throws {
            registry = try TestRegistry(.tlsBasic(user: "alice", password: RegistryEdgeTests.password))
            example = try RegistryTests.Example()
            try example.push(
                to: "docker://\(registry.host)/private/app:v1",
                extra: [
                    "--dest-creds", "alice:\(RegistryEdgeTests.password)", "--dest-cert-dir", registry.certDirectory,
                ])
        }

        func pull(through rules: [(String, FaultProxy.Fault, Int)]) throws -> CommandResult {
            let proxy = try FaultProxy(upstream: registry.host, rules: rules, tls: registry.serverTLS)
            return try Command.run(
                Command.ociUnpack,
                [
                    "tree-digest", "--platform", "linux/amd64", "docker://\(proxy.host)/private/app:v1",
                    "--creds", "alice:\(RegistryEdgeTests.password)", "--cert-dir", registry.certDirectory,
                ])
        }
    }

    /// Issue: a TLS registry's Bearer realm on plain http, on a host that is not loopback, got
    /// the user's Basic credentials in clear text.
    @Test(.timeLimit(.minutes(2))) func aPlainHTTPRealmOfATLSRegistryIsRefused() throws {
        let front = try TLSFront()
        let challenge = #"Bearer realm="http://auth.oci-unpack.invalid/token",service="registry""#
        let refused = try front.pull(through: [("/v2/", .challenge(challenge), 0)])
        #expect(refused.status == 74, "\(refused.stderr)")
        #expect(
            refused.stderr.contains("refusing the token realm http://auth.oci-unpack.invalid/token"),
            "\(refused.stderr)")
        #expect(!refused.stderr.contains(Self.password))
        // The proxy itself is fine: without the fault the pull succeeds.
        let good = try front.pull(through: [])
        #expect(good.status == 0, "\(good.stderr)")
    }

    /// Issue: a redirect from https to http on the same host and port was followed, with
    /// `Authorization` in clear text and the tag's manifest taken from the plain connection.
    @Test(.timeLimit(.minutes(2))) func aRedirectFromHTTPSToHTTPIsNeverFollowed() throws {
        let front = try TLSFront()
        // To plain http on the same host and port the credentials were given for.
        let same = try front.pull(through: [("/manifests/", .redirect(to: "http://SELF"), 0)])
        #expect(same.status == 74, "\(same.stderr)")
        #expect(same.stderr.contains("from https to plain http"), "\(same.stderr)")
        #expect(!same.stderr.contains(Self.password))
        // To another loopback port in plain http: the same refusal.
        let other = try front.pull(through: [("/manifests/", .redirect(to: "http://127.0.0.1:9"), 0)])
        #expect(other.status == 74, "\(other.stderr)")
        #expect(other.stderr.contains("from https to plain http"), "\(other.stderr)")
    }

    /// Issue: a DNS name that begins with `127.` was taken for loopback by its spelling and got
    /// plain HTTP. Loopback is `localhost` and IP literals only.
    @Test func loopbackIsDecidedOnLiteralsOnly() {
        for host in [
            "127.0.0.1", "127.0.0.1:5000", "127.8.9.10:1", "localhost", "LOCALHOST:5000", "[::1]:5000", "::1",
            "[0:0:0:0:0:0:0:1]:80",
        ] {
            #expect(RegistryClient.isLoopback(host), "\(host)")
        }
        for host in [
            "127.evil.test", "127.evil.test:5000", "127.0.0.1.nip.io", "localhost.evil.test", "[::2]:5000",
            "10.0.0.1", "128.0.0.1", "127.1", "example.com", "[::ffff:127.0.0.1]",
        ] {
            #expect(!RegistryClient.isLoopback(host), "\(host)")
        }
    }

    /// The pause before a retry: the server's Retry-After first, then --retry-delay, then doubling.
    @Test func theRetryPauseFollowsTheServerThenTheFixedDelayThenDoubling() {
        #expect(RegistryClient.backoff(attempt: 1, retryAfter: nil, fixed: nil) == 0.5)
        #expect(RegistryClient.backoff(attempt: 3, retryAfter: nil, fixed: nil) == 2)
        #expect(RegistryClient.backoff(attempt: 9, retryAfter: nil, fixed: nil) == 8)
        #expect(RegistryClient.backoff(attempt: 3, retryAfter: nil, fixed: 0.2) == 0.2)
        #expect(RegistryClient.backoff(attempt: 3, retryAfter: "7", fixed: 0.2) == 7)
        #expect(RegistryClient.backoff(attempt: 3, retryAfter: "600", fixed: nil) == 30)
    }

    /// The same, end to end: a `127.`-named registry is asked in https only.
    @Test(.timeLimit(.minutes(1))) func aNameThatLooksLikeLoopbackGetsNoPlainHTTP() throws {
        let result = try Command.run(Command.ociUnpack, ["inspect", "docker://127.oci-unpack.invalid:5999/x/y:v1"])
        #expect(result.status == 74, "\(result.stderr)")
        #expect(result.stderr.contains("https:"), "\(result.stderr)")
        #expect(!result.stderr.contains("http: "), "plain http was tried: \(result.stderr)")
    }

    /// A refused loopback connection is final: one clear line from the probe that runs before the
    /// HTTP client (whose retries took 10 s and whose text called it a reset); a missing
    /// --authfile says why it cannot be read.
    @Test(.timeLimit(.minutes(1))) func aRefusedLoopbackConnectionIsSaidOnceAndAtOnce() throws {
        // A port nothing listens on: bound, never listened, then closed.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        close(fd)
        try #require(bound)
        let host = "127.0.0.1:\(UInt16(bigEndian: address.sin_port))"
        let r = try Command.run(Command.ociUnpack, ["inspect", "docker://\(host)/x/y:v1"])
        ExitCodeTests.expectOneErrorLine(
            r, .io, "cannot reach registry \(host): connection refused (nothing listens there)")
        #expect(!r.stderr.contains("errno"), "\(r.stderr)")
        let auth = try Command.run(
            Command.ociUnpack, ["inspect", "--authfile", "/nonexistent/auth.json", "docker://\(host)/x/y:v1"])
        ExitCodeTests.expectOneErrorLine(
            auth, .notFound, "the auth file /nonexistent/auth.json cannot be read: No such file or directory")
    }

    /// Issue: a registry trickling a blob one byte at a time was never timed out. Below the
    /// minimum rate a transfer fails and resumes; one that stays too slow is refused.
    @Test(.timeLimit(.minutes(2))) func aTricklingRegistryIsResumedThenRefused() throws {
        let registry = try TestRegistry(.plain)
        let example = try RegistryTests.Example()
        try example.push(to: "docker://\(registry.host)/example/app:v1", extra: ["--dest-tls-verify=false"])
        let expected = try example.localDigest()
        func pull(_ rules: [(String, FaultProxy.Fault, Int)], _ extra: [String]) throws -> CommandResult {
            let proxy = try FaultProxy(upstream: registry.host, rules: rules)
            return try Command.run(
                Command.ociUnpack,
                ["tree-digest", "--platform", "linux/amd64", "docker://\(proxy.host)/example/app:v1"] + extra)
        }
        let fast = ["--speed-limit", "1000", "--speed-time", "1"]
        // One trickled blob: too slow, resumed with a Range request, then verified.
        let resumed = try pull([("/blobs/sha256:", .trickle(everySeconds: 0.3), 1)], fast)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.hasPrefix(expected.description))
        // Always trickled: refused once the resumes are used up, naming the rule.
        let refused = try pull([("/blobs/sha256:", .trickle(everySeconds: 0.3), 0)], fast)
        #expect(refused.status == 74, "\(refused.stderr)")
        #expect(refused.stderr.contains("too slow"), "\(refused.stderr)")
        #expect(refused.stderr.contains("--speed-limit"), "\(refused.stderr)")
        // A trickled manifest (a document) is bounded the same way.
        let document = try pull([("/manifests/", .trickle(everySeconds: 0.3), 0)], fast)
        #expect(document.status == 74, "\(document.stderr)")
        #expect(document.stderr.contains("too slow"), "\(document.stderr)")
        // The overall deadline ends it whatever the rate, and is not retried.
        let deadline = try pull(
            [("/blobs/sha256:", .trickle(everySeconds: 0.3), 0)], ["--speed-limit", "0", "--command-timeout", "3s"])
        #expect(deadline.status == 74, "\(deadline.stderr)")
        #expect(deadline.stderr.contains("the --command-timeout of 3 s passed"), "\(deadline.stderr)")
        let malformed = try pull([], ["--command-timeout", "soon"])
        #expect(malformed.status == 64, "\(malformed.stderr)")
    }
}
