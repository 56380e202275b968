import Foundation
import Glibc

/// Debian's `docker-registry` (the distribution registry) started on 127.0.0.1 for one test, in
/// one of the configurations the registry tests need, and stopped when the value goes away.
package final class TestRegistry: @unchecked Sendable {
    package enum Mode {
        /// Plain HTTP, anonymous.
        case plain
        /// TLS with a CA made for the test, and htpasswd basic auth (`user`, `password`).
        case tlsBasic(user: String, password: String)
        /// Plain HTTP with token auth: a small token issuer (started beside the registry) grants
        /// `user` what it asks for and anybody else nothing, in RS256 tokens the registry checks.
        case token(user: String, password: String)
        /// Plain HTTP, anonymous, a pull-through cache of the registry at `remote` (`HOST:PORT`,
        /// plain HTTP): `proxy.remoteurl`, as a site's mirror runs it.
        case pullThrough(remote: String)
    }

    package let directory: TemporaryDirectory
    package let port: Int
    package let process: Process
    /// The token issuer, in token mode.
    var issuer: Process?
    /// The CA certificate (TLS mode), as `--cert-dir` and skopeo's `--dest-cert-dir` take it.
    package var certDirectory: String { directory.path + "/certs" }
    /// `127.0.0.1:PORT`.
    package var host: String { "127.0.0.1:\(port)" }
    /// The blobs the registry stores (a pull-through cache stores what it served).
    package var storedBlobs: [String] {
        let root = directory.path + "/data/docker/registry/v2/blobs/sha256"
        let prefixes = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return prefixes.flatMap { prefix in
            ((try? FileManager.default.contentsOfDirectory(atPath: root + "/" + prefix)) ?? []).map { "sha256:" + $0 }
        }
    }

    /// The server's certificate and key (TLS mode), for a TLS proxy in front of it.
    package var serverTLS: (certificate: String, key: String) {
        (directory.path + "/server.crt", directory.path + "/server.key")
    }

    package init(_ mode: Mode) throws {
        directory = try TemporaryDirectory(prefix: "oci-unpack-registry")
        let root = directory.path
        port = try Self.freePort()
        var config = """
            version: 0.1
            log:
              level: error
              accesslog:
                disabled: true
            storage:
              filesystem:
                rootdirectory: \(root)/data
            http:
              addr: 127.0.0.1:\(port)

            """
        if case .tlsBasic(let user, let password) = mode {
            try FileManager.default.createDirectory(atPath: root + "/certs", withIntermediateDirectories: true)
            let script = """
                set -e
                cd "$0"
                openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=oci-unpack-test-ca \
                    -keyout ca.key -out certs/ca.crt 2>/dev/null
                openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null
                printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext
                openssl x509 -req -in server.csr -CA certs/ca.crt -CAkey ca.key -CAcreateserial -days 2 \
                    -extfile san.ext -out server.crt 2>/dev/null
                htpasswd -Bbn "$1" "$2" > htpasswd
                """
            let made = try Command.run("sh", ["-c", script, root, user, password])
            guard made.status == 0 else { throw TestRegistryError.setup("TLS and htpasswd: \(made.stderr)") }
            config += """
                  tls:
                    certificate: \(root)/server.crt
                    key: \(root)/server.key
                auth:
                  htpasswd:
                    realm: oci-unpack-test
                    path: \(root)/htpasswd

                """
        }
        var startedIssuer: Process?
        if case .token(let user, let password) = mode {
            let issuerPort = try Self.freePort()
            let made = try Command.run(
                "openssl",
                [
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=oci-unpack-test-issuer",
                    "-keyout", root + "/signing.key", "-out", root + "/signing.crt",
                ])
            guard made.status == 0 else { throw TestRegistryError.setup("signing key: \(made.stderr)") }
            try Self.issuerScript.write(toFile: root + "/issuer.py", atomically: true, encoding: .utf8)
            let issuer = try Self.serve(
                [
                    "python3", root + "/issuer.py", String(issuerPort), root + "/signing.key", root + "/signing.crt",
                    user, password,
                ], on: issuerPort)
            startedIssuer = issuer
            config += """
                auth:
                  token:
                    realm: http://127.0.0.1:\(issuerPort)/token
                    service: oci-unpack-test
                    issuer: oci-unpack-test-issuer
                    rootcertbundle: \(root)/signing.crt

                """
        }
        if case .pullThrough(let remote) = mode {
            config += """
                proxy:
                  remoteurl: http://\(remote)

                """
        }
        try config.write(toFile: root + "/config.yml", atomically: true, encoding: .utf8)
        do {
            process = try Self.serve(["docker-registry", "serve", root + "/config.yml"], on: port)
        } catch {
            if let startedIssuer { Self.stop(startedIssuer) }
            throw error
        }
        issuer = startedIssuer
    }

    /// Starts `arguments` (through env, output discarded) and waits until it accepts connections
    /// on `port`; killed if it does not within five seconds.
    static func serve(_ arguments: [String], on port: Int) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 {
            if accepts(port) { return process }
            usleep(25_000)
        }
        stop(process)
        throw TestRegistryError.setup("\(arguments[0]) did not listen on 127.0.0.1:\(port)")
    }

    /// SIGKILL: a test process may pass SIGTERM on ignored (its cancellation tests), and a child
    /// inherits that.
    static func stop(_ process: Process) {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    private var halted = false

    /// Stops the registry now (a test that must do without it).
    package func halt() {
        guard !halted else { return }
        halted = true
        Self.stop(process)
        if let issuer { Self.stop(issuer) }
    }

    deinit { halt() }

    /// The token issuer: RS256 JWTs signed with openssl, the signing certificate in `x5c` (the
    /// registry checks it against its `rootcertbundle`).
    static let issuerScript = #"""
        import base64, http.server, json, subprocess, sys, time, urllib.parse

        port, key, cert, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
        der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], capture_output=True, check=True).stdout

        def b64(data):
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        class Issuer(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                granted = []
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    if base64.b64decode(auth[6:]).decode() != user + ":" + password:
                        self.send_response(401)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    for scope in query.get("scope", []):
                        kind, name, actions = scope.split(":")
                        granted.append({"type": kind, "name": name, "actions": actions.split(",")})
                now = int(time.time())
                header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(der).decode()]}
                claims = {"iss": "oci-unpack-test-issuer", "sub": user, "aud": query.get("service", [""])[0],
                          "exp": now + 600, "nbf": now - 10, "iat": now, "jti": str(time.time_ns()), "access": granted}
                signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
                signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input.encode(),
                                           capture_output=True, check=True).stdout
                body = json.dumps({"token": signing_input + "." + b64(signature)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        http.server.ThreadingHTTPServer(("127.0.0.1", port), Issuer).serve_forever()
        """#

    /// A port nothing listens on now (the kernel's pick for port 0).
    package static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestRegistryError.setup("socket: \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                Glibc.bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw TestRegistryError.setup("bind: \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

package enum TestRegistryError: Error, CustomStringConvertible {
    case setup(String)

    package var description: String {
        switch self {
        case .setup(let why): "test registry: \(why)"
        }
    }
}
