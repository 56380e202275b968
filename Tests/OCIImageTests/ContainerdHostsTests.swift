import FoundationEssentials
import OCIImage
import Testing
import UnpackTestSupport

/// containerd's hosts.toml as containerd's docs/hosts.md and its reader define it: the hosts in
/// the file's order then the server, `/v2` appended unless `override_path`, `ns=` for every host
/// but the registry's own, capabilities, and the directory lookup (`HOST_PORT_`, `HOST`,
/// `_default`); every error with its file and line.
@Suite struct ContainerdHostsTests {
    static func endpoints(_ text: String, host: String = "docker.io", repository: String = "library/alpine")
        throws(UnpackError) -> [RegistriesConf.Endpoint]
    {
        try ContainerdHosts.endpoints(
            text: text, file: "/etc/containerd/certs.d/\(host)/hosts.toml",
            directory: "/etc/containerd/certs.d/\(host)",
            host: host, repository: repository)
    }

    /// The example of containerd's docs/hosts.md for docker.io, with a local mirror first.
    @Test func mirrorsInFileOrderThenTheServer() throws {
        let list = try Self.endpoints(
            """
            server = "https://registry-1.docker.io"

            [host."http://192.168.31.250:5000"]
              capabilities = ["pull", "resolve"]
              skip_verify = true

            [host."https://mirror.example/prefix/"]
              capabilities = ["pull"]
              ca = ["ca.crt", "/abs/other.crt"]
              client = [["client.cert", "client.key"]]
              dial_timeout = "1m30s"
              [host."https://mirror.example/prefix/".header]
                x-custom-2 = ["value1", "value2"]
                X-Token = "t"
            """)
        #expect(
            list.map(\.description) == [
                "http://192.168.31.250:5000/v2/library/alpine", "https://mirror.example/prefix/v2/library/alpine",
                "https://registry-1.docker.io/v2/library/alpine",
            ])
        #expect(list.map(\.isMirror) == [true, true, false])
        #expect(list.map(\.namespace) == ["docker.io", "docker.io", nil])
        #expect(list.map(\.resolves) == [true, false, true])
        #expect(list.map(\.pulls) == [true, true, true])
        #expect(list.map(\.skipVerify) == [true, false, false])
        #expect(list[1].caFiles == ["/etc/containerd/certs.d/docker.io/ca.crt", "/abs/other.crt"])
        #expect(
            list[1].clientCertificates == [
                .init(
                    certificate: "/etc/containerd/certs.d/docker.io/client.cert",
                    key: "/etc/containerd/certs.d/docker.io/client.key")
            ])
        #expect(list[1].connectTimeout == 90)
        #expect(
            list[1].headers == [
                .init(name: "X-Token", value: "t"), .init(name: "x-custom-2", value: "value1"),
                .init(name: "x-custom-2", value: "value2"),
            ])
        #expect(
            list[0].configuredIn == "/etc/containerd/certs.d/docker.io/hosts.toml [host.\"http://192.168.31.250:5000\"]"
        )
    }

    /// Without `server` the registry itself comes last, its scheme negotiated as without
    /// hosts.toml; `override_path` keeps a URL's path as the API root; a host without a scheme is https.
    @Test func theRegistryItselfOverridePathAndBareHosts() throws {
        let list = try Self.endpoints(
            """
            [host."127.0.0.1:30020"]
            [host."http://spegel.local:5000/api/registry"]
              override_path = true
            """, host: "127.0.0.1:5000", repository: "team/app")
        #expect(
            list.map(\.description) == [
                "https://127.0.0.1:30020/v2/team/app", "http://spegel.local:5000/api/registry/team/app",
                "127.0.0.1:5000/team/app",
            ])
        #expect(list.map(\.namespace) == ["127.0.0.1:5000", "127.0.0.1:5000", nil])
        #expect(list.last?.scheme == nil)
        #expect(list.last?.apiPath == "/v2")
        // The file's order, not the names' order.
        let reversed = try Self.endpoints("[host.\"https://b.example\"]\n[host.\"https://a.example\"]\n")
        #expect(reversed.map(\.host) == ["b.example", "a.example", "docker.io"])
        // A server that is another host gets ns= too (it is not the registry the name says).
        let moved = try Self.endpoints("server = \"https://elsewhere.example\"", host: "quay.io")
        #expect(moved.map(\.namespace) == ["quay.io"])
        #expect(moved.map(\.isMirror) == [false])
    }

    /// What containerd would ignore or read loosely is an error naming the file and line.
    @Test func mistakesNameTheFileAndLine() throws {
        let cases: [(String, String)] = [
            (
                "[host.\"https://m\"]\ncapabilities = [\"pull\", \"fetch\"]",
                "hosts.toml:2: [host.\"https://m\"]: unknown capability \"fetch\""
            ),
            (
                "[host.\"https://m\"]\nskip-verify = true",
                "hosts.toml:2: unknown key \"skip-verify\" in [host.\"https://m\"]"
            ),
            ("serverr = \"https://x\"", "hosts.toml:1: unknown key \"serverr\""),
            ("server = 5", "hosts.toml:1: server must be a URL string"),
            (
                "[host.\"https://u:p@m\"]",
                "hosts.toml:1: [host.\"https://u:p@m\"]: \"https://u:p@m\" is not a registry URL"
            ),
            ("[host.\"https://m/?x=1\"]", "is not a registry URL"),
            ("[host.\"https://m/../v2\"]", "has . or .. components"),
            (
                "[host.\"https://m\"]\nca = 1",
                "hosts.toml:2: ca in [host.\"https://m\"] must be a string or an array of strings, not an integer"
            ),
            ("[host.\"https://m\"]\nclient = [[\"a\"]]", "hosts.toml:2: client in [host.\"https://m\"] must be a file"),
            (
                "[host.\"https://m\"]\ndial_timeout = \"5 s\"",
                "hosts.toml:2: dial_timeout in [host.\"https://m\"] must be a duration"
            ),
            (
                "[host.\"https://m\".header]\nAuthorization = \"Basic x\"",
                "the header Authorization is set by oci-unpack itself"
            ),
            ("[host.\"https://m\".header]\n\"a b\" = \"x\"", "\"a b\" is not a header name"),
            ("[host.\"https://m\".header]\nx = \"a\\nb\"", "the value of header x has control characters"),
            ("host = \"https://m\"", "hosts.toml:1: host must be a table"),
            ("[host.\"https://m\"", "hosts.toml:1:"),
        ]
        for (text, expected) in cases {
            #expect(throws: UnpackError.self, "\(text)") {
                do throws(UnpackError) {
                    _ = try Self.endpoints(text)
                } catch {
                    #expect(error.code == .invalidArgument, "\(text)")
                    #expect(error.message.contains(expected), "\(text): \(error.message)")
                    throw error
                }
            }
        }
    }

    /// `HOST_PORT_` before `HOST:PORT` before `_default`; a directory without hosts.toml holds
    /// docker-style certificates for the registry itself.
    @Test func directoriesAreLookedUpAsContainerdLooksThemUp() throws {
        let root = try TemporaryDirectory()
        let hosts = ContainerdHosts(root: root.path)
        #expect(hosts.directory(for: "127.0.0.1:5000") == nil)
        #expect(try hosts.endpoints(host: "127.0.0.1:5000", repository: "a") == nil)
        for name in ["_default", "127.0.0.1:5000", "127.0.0.1_5000_", "certs.example"] {
            try FileManager.default.createDirectory(atPath: root.path + "/" + name, withIntermediateDirectories: true)
        }
        #expect(hosts.directory(for: "127.0.0.1:5000") == root.path + "/127.0.0.1_5000_")
        #expect(hosts.directory(for: "quay.io") == root.path + "/_default")
        try FileManager.default.removeItem(atPath: root.path + "/127.0.0.1_5000_")
        #expect(hosts.directory(for: "127.0.0.1:5000") == root.path + "/127.0.0.1:5000")
        try "[host.\"http://127.0.0.1:6000\"]\n".write(
            toFile: root.path + "/_default/hosts.toml", atomically: true, encoding: .utf8)
        let defaulted = try #require(try hosts.endpoints(host: "quay.io", repository: "a/b"))
        #expect(defaulted.map(\.description) == ["http://127.0.0.1:6000/v2/a/b", "quay.io/a/b"])
        for file in ["ca.crt", "client.cert", "client.key", "notes.txt"] {
            try "x".write(toFile: root.path + "/certs.example/" + file, atomically: true, encoding: .utf8)
        }
        let certs = try #require(try hosts.endpoints(host: "certs.example", repository: "r", insecure: true))
        #expect(certs.map(\.description) == ["certs.example/r"])
        #expect(certs[0].insecure)
        #expect(certs[0].caFiles == [root.path + "/certs.example/ca.crt"])
        #expect(
            certs[0].clientCertificates == [
                .init(
                    certificate: root.path + "/certs.example/client.cert", key: root.path + "/certs.example/client.key")
            ])
    }
}
