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
    }

    package let directory: TemporaryDirectory
    package let port: Int
    package let process: Process
    /// The CA certificate (TLS mode), as `--cert-dir` and skopeo's `--dest-cert-dir` take it.
    package var certDirectory: String { directory.path + "/certs" }
    /// `127.0.0.1:PORT`.
    package var host: String { "127.0.0.1:\(port)" }

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
        try config.write(toFile: root + "/config.yml", atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/docker-registry")
        process.arguments = ["serve", root + "/config.yml"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        // Ready when it accepts connections.
        for _ in 0..<200 {
            if Self.accepts(port) { return }
            usleep(25_000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw TestRegistryError.setup("docker-registry did not listen on 127.0.0.1:\(port)")
    }

    deinit {
        // SIGKILL: a test process may pass SIGTERM on ignored (its cancellation tests), and a
        // child inherits that.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// A port nothing listens on now (the kernel's pick for port 0).
    static func freePort() throws -> Int {
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
