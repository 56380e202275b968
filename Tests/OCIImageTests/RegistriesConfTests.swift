import FoundationEssentials
import OCIImage
import Testing
import UnpackTestSupport

/// registries.conf as containers-registries.conf(5) and containers-registries.conf.d(5) define it:
/// the TOML it is written in, prefixes, locations, mirrors, drop-ins, and every error with its
/// file and line.
@Suite struct RegistriesConfTests {
    static let manPageExample = """
        unqualified-search-registries = ["example.com"]

        [[registry]]
        prefix = "example.com/foo"
        insecure = false
        blocked = false
        location = "internal-registry-for-example.com/bar"

        [[registry.mirror]]
        location = "example-mirror-0.local/mirror-for-foo"

        [[registry.mirror]]
        location = "example-mirror-1.local/mirrors/foo"
        insecure = true
        """

    static func conf(_ text: String, file: String = "test.conf") throws(UnpackError) -> RegistriesConf {
        var conf = RegistriesConf()
        try conf.merge(text: text, file: file)
        return conf
    }

    @Test func theManPagesExampleTriesBothMirrorsThenTheLocation() throws {
        let conf = try Self.conf(Self.manPageExample)
        #expect(conf.unqualifiedSearchRegistries == ["example.com"])
        let endpoints = try conf.endpoints(
            host: "example.com", repository: "foo/image", selector: ":latest", byDigest: false)
        #expect(
            endpoints.map(\.description) == [
                "example-mirror-0.local/mirror-for-foo/image", "example-mirror-1.local/mirrors/foo/image",
                "internal-registry-for-example.com/bar/image",
            ])
        #expect(endpoints.map(\.insecure) == [false, true, false])
        #expect(endpoints.map(\.isMirror) == [true, true, false])
        // Another namespace of the same host: no table matches, the name is used as it is.
        let other = try conf.endpoints(host: "example.com", repository: "foobar/x", selector: ":1", byDigest: false)
        #expect(other.map(\.description) == ["example.com/foobar/x"])
    }

    @Test func theLongestPrefixWinsAndWildcardsMatchSubdomains() throws {
        let conf = try Self.conf(
            """
            [[registry]]
            location = "registry.example"
            insecure = true
            [[registry]]
            prefix = "registry.example/team"
            location = "mirror.example:5000/team-copy"
            [[registry]]
            prefix = "*.corp.example"
            blocked = true
            """)
        #expect(conf.registry(matching: "registry.example/team/app:1")?.prefix == "registry.example/team")
        #expect(conf.registry(matching: "registry.example/teamwork/app:1")?.prefix == "registry.example")
        #expect(conf.registry(matching: "registry.example.org/x") == nil, "a prefix ends at /, : or @")
        let team = try conf.endpoints(host: "registry.example", repository: "team/app", selector: ":1", byDigest: false)
        #expect(team.map(\.description) == ["mirror.example:5000/team-copy/app"])
        let blocked = #expect(throws: UnpackError.self) {
            try conf.endpoints(host: "images.corp.example", repository: "app", selector: ":1", byDigest: false)
        }
        #expect(blocked?.code == .policyRejected)
        #expect(blocked?.message.contains("*.corp.example") == true)
        #expect(blocked?.message.contains("test.conf:7") == true, "\(blocked?.message ?? "")")
    }

    /// A wildcard's mirrors take what follows the host; its primary is the name itself. Arrays of
    /// inline tables mean what [[…]] means; trailing slashes go; a scheme is refused.
    @Test func wildcardMirrorsAndInlineTablesAndCleanedLocations() throws {
        let conf = try Self.conf(
            """
            registry = [
              { prefix = "*.corp.example", mirror = [{ location = "cache.example/corp", insecure = true }] },
              { prefix = "plain.example/", location = "real.example/ns/" },
            ]
            """)
        let endpoints = try conf.endpoints(
            host: "images.corp.example:5000", repository: "team/app", selector: ":1", byDigest: false)
        #expect(endpoints.map(\.description) == ["cache.example/corp/team/app", "images.corp.example:5000/team/app"])
        #expect(endpoints.map(\.insecure) == [true, false], "the origin keeps TLS")
        let plain = try conf.endpoints(host: "plain.example", repository: "app", selector: ":1", byDigest: false)
        #expect(plain.map(\.description) == ["real.example/ns/app"])
        let scheme = #expect(throws: UnpackError.self) {
            try Self.conf("[[registry]]\nlocation = \"https://r.example\"\n")
        }
        #expect(
            scheme?.message.contains("no scheme") == true || scheme?.message.contains("must not name a scheme") == true)
    }

    @Test func mirrorsServeTheReferencesTheyAreFor() throws {
        let conf = try Self.conf(
            """
            [[registry]]
            location = "origin.example"
            [[registry.mirror]]
            location = "by-digest.example"
            pull-from-mirror = "digest-only"
            [[registry.mirror]]
            location = "by-tag.example"
            pull-from-mirror = "tag-only"
            [[registry.mirror]]
            location = "any.example"
            """)
        let byTag = try conf.endpoints(host: "origin.example", repository: "a", selector: ":v1", byDigest: false)
        #expect(byTag.map(\.host) == ["by-tag.example", "any.example", "origin.example"])
        let byDigest = try conf.endpoints(
            host: "origin.example", repository: "a", selector: "@sha256:x", byDigest: true)
        #expect(byDigest.map(\.host) == ["by-digest.example", "any.example", "origin.example"])
        let digestOnly = try Self.conf(
            """
            [[registry]]
            location = "origin.example"
            mirror-by-digest-only = true
            [[registry.mirror]]
            location = "m.example"
            """)
        #expect(
            try digestOnly.endpoints(host: "origin.example", repository: "a", selector: ":v1", byDigest: false)
                .map(\.host) == ["origin.example"])
    }

    /// A drop-in replaces the fields it sets and the tables of the same prefix; aliases merge.
    @Test func dropInsOverrideInOrder() throws {
        let tmp = try TemporaryDirectory()
        let root = tmp.path
        try FileManager.default.createDirectory(
            atPath: root + "/etc/containers/registries.conf.d", withIntermediateDirectories: true)
        try Self.manPageExample.write(
            toFile: root + "/etc/containers/registries.conf", atomically: true, encoding: .utf8)
        try """
        unqualified-search-registries = ["quay.io"]
        [[registry]]
        prefix = "example.com/foo"
        location = "replaced.example"
        [aliases]
        "app" = "quay.io/team/app"
        "gone" = "quay.io/x/gone"
        """.write(toFile: root + "/etc/containers/registries.conf.d/10-site.conf", atomically: true, encoding: .utf8)
        try """
        [aliases]
        "gone" = ""
        """.write(toFile: root + "/etc/containers/registries.conf.d/20-late.conf", atomically: true, encoding: .utf8)
        try "not toml at all".write(
            toFile: root + "/etc/containers/registries.conf.d/README", atomically: true, encoding: .utf8)
        let conf = try RegistriesConf.load(explicit: nil, environment: [:], systemRoot: root)
        #expect(
            conf.files.map { String($0.dropFirst(root.count)) } == [
                "/etc/containers/registries.conf", "/etc/containers/registries.conf.d/10-site.conf",
                "/etc/containers/registries.conf.d/20-late.conf",
            ])
        #expect(conf.unqualifiedSearchRegistries == ["quay.io"])
        #expect(conf.registries.count == 1)
        #expect(conf.registries.first?.location == "replaced.example")
        #expect(conf.registries.first?.mirrors.isEmpty == true, "the whole table is replaced")
        #expect(conf.aliases == ["app": "quay.io/team/app"])
        // $CONTAINERS_REGISTRIES_CONF (and --registries-conf) is read alone.
        let alone = try RegistriesConf.load(
            explicit: nil, environment: ["CONTAINERS_REGISTRIES_CONF": root + "/etc/containers/registries.conf"],
            systemRoot: root)
        #expect(alone.registries.first?.mirrors.count == 2)
        let missing = #expect(throws: UnpackError.self) {
            try RegistriesConf.load(explicit: root + "/nope.conf", environment: [:], systemRoot: root)
        }
        #expect(missing?.code == .notFound)
    }

    @Test func theDeprecatedVersionOneListsAreRead() throws {
        let conf = try Self.conf(
            """
            [registries.search]
            registries = ['registry1.com', 'registry2.com']
            [registries.insecure]
            registries = ['registry3.com']
            [registries.block]
            registries = ['registry.untrusted.com']
            """)
        #expect(conf.unqualifiedSearchRegistries == ["registry1.com", "registry2.com"])
        #expect(
            try conf.endpoints(host: "registry3.com", repository: "a", selector: ":1", byDigest: false).first?.insecure
                == true)
        #expect(throws: UnpackError.self) {
            try conf.endpoints(host: "registry.untrusted.com", repository: "a", selector: ":1", byDigest: false)
        }
    }

    /// The files this machine's packages install (containers-common's registries.conf and
    /// shortnames.conf) are read without error.
    @Test func theSystemsOwnFilesAreRead() throws {
        let conf = try RegistriesConf.load(explicit: nil, environment: [:])
        for file in conf.files { #expect(file.hasPrefix("/etc/containers/")) }
        if FileManager.default.fileExists(atPath: "/etc/containers/registries.conf") {
            #expect(conf.files.first == "/etc/containers/registries.conf")
        }
        if FileManager.default.fileExists(atPath: "/etc/containers/registries.conf.d/shortnames.conf") {
            #expect(conf.aliases["alpine"] == "docker.io/library/alpine", "containers-common's aliases")
        }
    }

    /// Bad input: the file and line, and what is wrong.
    @Test(arguments: [
        ("[[registry]]\nprefix = \"a\"\nprefix = \"b\"\n", "x.conf:3", "defined twice"),
        ("[[registry]]\nlocation = 5\n", "x.conf:2", "location must be a string"),
        ("[[registry]]\nlocation = \"a\"\ninsecure = \"yes\"\n", "x.conf:3", "insecure must be true or false"),
        ("unqualified-search-registries = [\"a\", 1]\n", "x.conf:1", "array of strings"),
        ("# ok\n\n[[registry]]\nlocation = \"a\n", "x.conf:4", "not closed"),
        ("[aliases]\n[aliases]\n", "x.conf:2", "defined twice"),
        ("[[registry]]\nlocation = \"a\"\n[[registry.mirror]]\ninsecure = true\n", "x.conf:3", "needs a location"),
        (
            "[[registry]]\nlocation = \"a\"\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = \"sometimes\"\n",
            "x.conf:5", "pull-from-mirror"
        ),
        ("short-name-mode = \"strict\"\n", "x.conf:1", "short-name-mode"),
        ("key = \"\"\"\nmulti\n\"\"\"\n", "x.conf:1", "multi-line"),
        ("a = 1.5\n", "x.conf:1", "not a value"),
        ("a = \"x\" b = 1\n", "x.conf:1", "one key = value per line"),
        ("a = \"\\u+041\"\n", "x.conf:1", "escape"),
        ("a = { b = 1 }\na.c = 2\n", "x.conf:2", "inline table"),
        (String(repeating: "k.", count: 100) + "k = 1\n", "x.conf:1", "parts"),
        ("[[registry]]\nprefix = \"*.example.com\"\nlocation = \"x\"\n", "x.conf:1", "wildcard"),
        ("unqualified-search-registries = [\"b\"]\n[registries.search]\nregistries = [\"a\"]\n", "x.conf:2", "mixes"),
    ])
    func badFilesAreRefusedWithTheirLine(text: String, place: String, message: String) {
        let error = #expect(throws: UnpackError.self) { try Self.conf(text, file: "x.conf") }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(place) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
    }

    /// Many tables, each with keys and a mirror: every one kept, in order (the reader changes them
    /// in place; hack/fuzz would time out on a reader that copies a table per key).
    @Test func manyTablesAreAllKept() throws {
        var text = ""
        for i in 0..<5000 {
            text += "[[registry]]\nprefix = \"r\(i).example\"\n[[registry.mirror]]\nlocation = \"m\(i).example\"\n"
        }
        let conf = try Self.conf(text)
        #expect(conf.registries.count == 5000)
        #expect(conf.registries.last?.mirrors.map(\.location) == ["m4999.example"])
        #expect(conf.registry(matching: "r1234.example/a:1")?.mirrors.first?.location == "m1234.example")
    }

    @Test func tomlValuesAreReadAsWritten() throws {
        let table = try TOML.parse(
            """
            # a comment
            name = "tab\\there \\u00e9" # trailing comment
            literal = 'C:\\path'
            count = 1_000
            negative = -3
            flags = [
              true,   # one
              false,
            ]
            inline = { a = "x", b.c = 2 }
            dotted.key = "v"
            "quoted key" = "q"
            """, file: "t.toml")
        #expect(table["name"] == .string("tab\there é"))
        #expect(table["literal"] == .string("C:\\path"))
        #expect(table["count"] == .integer(1000))
        #expect(table["negative"] == .integer(-3))
        #expect(table["flags"] == .array([.bool(true), .bool(false)]))
        guard case .table(let inline)? = table["inline"], case .table(let b)? = inline["b"] else {
            Issue.record("inline table: \(table)")
            return
        }
        #expect(inline["a"] == .string("x"))
        #expect(b["c"] == .integer(2))
        guard case .table(let dotted)? = table["dotted"] else {
            Issue.record("dotted key")
            return
        }
        #expect(dotted["key"] == .string("v"))
        #expect(table["quoted key"] == .string("q"))
        #expect(table.lines["count"] == 4)
    }
}

/// Short names as podman resolves them with registries.conf.
@Suite struct ShortNameTests {
    static func reference(_ text: String) throws(UnpackError) -> ImageReference {
        try ImageReference(parsing: text, isDirectory: { _ in false })
    }

    @Test func aReferenceWithoutARegistryKeepsItsShortName() throws {
        #expect(try Self.reference("docker://alpine:3").shortName == "alpine")
        #expect(
            try Self.reference("docker://team/app@sha256:\(String(repeating: "a", count: 64))").shortName == "team/app")
        #expect(try Self.reference("docker://alpine").layoutPath == "docker.io/library/alpine", "docker's rule stands")
        #expect(try Self.reference("docker://docker.io/alpine").shortName == nil)
        #expect(try Self.reference("docker://localhost/app").shortName == nil)
        #expect(try Self.reference("docker://127.0.0.1:5000/app").shortName == nil)
    }

    @Test func aliasesComeFirstThenTheSearchRegistriesInOrder() throws {
        let conf = try RegistriesConfTests.conf(
            """
            unqualified-search-registries = ["quay.io", "docker.io"]
            [aliases]
            "tool" = "registry.example/tools/tool"
            """)
        #expect(try conf.resolveShortName("tool").names == ["registry.example/tools/tool"])
        #expect(try conf.resolveShortName("app").names == ["quay.io/app", "docker.io/library/app"])
        #expect(try conf.resolveShortName("team/app").names == ["quay.io/team/app", "docker.io/team/app"])
    }

    @Test func enforcingRefusesAnAmbiguousNameListingTheCandidates() throws {
        let conf = try RegistriesConfTests.conf(
            """
            unqualified-search-registries = ["quay.io", "docker.io"]
            short-name-mode = "enforcing"
            """)
        let error = #expect(throws: UnpackError.self) { try conf.resolveShortName("app") }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("quay.io/app, docker.io/library/app") == true, "\(error?.message ?? "")")
        let single = try RegistriesConfTests.conf(
            """
            unqualified-search-registries = ["quay.io"]
            short-name-mode = "enforcing"
            """)
        #expect(try single.resolveShortName("app").names == ["quay.io/app"], "one candidate is no ambiguity")
    }

    @Test func withoutAliasOrSearchRegistriesAShortNameIsAnError() throws {
        let error = #expect(throws: UnpackError.self) { try RegistriesConfTests.conf("").resolveShortName("app") }
        #expect(error?.message.contains("no unqualified-search-registries") == true)
        let bad = try RegistriesConfTests.conf(
            "[aliases]\n\"x\" = \"notaregistry\"\n\"t\" = \"r.example/app:1\"\n")
        #expect(throws: UnpackError.self) { try bad.resolveShortName("x") }
        #expect(throws: UnpackError.self) { try bad.resolveShortName("t") }
    }
}
