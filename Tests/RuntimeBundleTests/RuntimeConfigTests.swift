import Foundation
import OCIImage
import RuntimeBundle
import Testing

@Suite struct RuntimeConfigTests {
    static let users = UserDatabase(
        passwd: Array("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n".utf8),
        group: Array("root:x:0:\nwheel:x:10:app\n".utf8))

    static func image(_ execution: ImageConfig.Execution, os: String = "linux") -> ImageConfig {
        var config = ImageConfig(
            platform: Platform(os: os, architecture: "arm64", variant: "v8"), config: execution, diffIDs: [],
            created: "2026-01-02T03:04:05Z")
        config.author = "someone"
        return config
    }

    static let minimalTemplate = JSONValue.object([
        "ociVersion": .string("1.0.2"),
        "process": .object(["terminal": .bool(false), "user": .object(["umask": .int(18)])]),
        "root": .object(["path": .string("elsewhere"), "readonly": .bool(true)]),
        "mounts": .array([
            .object(["destination": .string("/proc"), "type": .string("proc"), "source": .string("proc")])
        ]),
        "annotations": .object(["from.template": .string("kept"), "org.opencontainers.image.os": .string("overridden")]
        ),
    ])

    @Test func convertsAsConversionMdSays() throws {
        let execution = ImageConfig.Execution(
            user: "app", exposedPorts: ["8080/tcp": .init(), "53/udp": .init()], env: ["FOO=bar", "PATH=/custom"],
            entrypoint: ["/bin/server"], cmd: ["--port", "8080"], volumes: ["/var/data": .init(), "/proc": .init()],
            workingDir: "/srv", labels: ["org.opencontainers.image.author": "label wins", "x": "y"],
            stopSignal: "SIGQUIT")
        let config = try RuntimeConfig.make(
            template: Self.minimalTemplate, image: Self.image(execution), users: Self.users)
        let process = try #require(config["process"])
        #expect(process["args"] == .strings(["/bin/server", "--port", "8080"]))
        #expect(process["env"] == .strings(["FOO=bar", "PATH=/custom", "HOME=/home/app"]))
        #expect(process["cwd"] == .string("/srv"))
        #expect(
            process["user"]
                == .object([
                    "uid": .int(1000), "gid": .int(1000), "additionalGids": .array([.int(10)]), "umask": .int(18),
                ]))
        #expect(process["terminal"] == .bool(false), "template fields are kept")
        #expect(config["root"] == .object(["path": .string("rootfs"), "readonly": .bool(true)]))
        let annotations = try #require(config["annotations"]?.objectValue)
        #expect(
            annotations == [
                "from.template": .string("kept"),
                "org.opencontainers.image.os": .string("linux"),
                "org.opencontainers.image.architecture": .string("arm64"),
                "org.opencontainers.image.variant": .string("v8"),
                "org.opencontainers.image.author": .string("label wins"),
                "org.opencontainers.image.created": .string("2026-01-02T03:04:05Z"),
                "org.opencontainers.image.stopSignal": .string("SIGQUIT"),
                "org.opencontainers.image.exposedPorts": .string("53/udp,8080/tcp"),
                "x": .string("y"),
            ])
        // /proc is already mounted by the template; /var/data becomes a tmpfs.
        #expect(config["mounts"]?.arrayValue?.count == 2)
        #expect(
            config["mounts"]?.arrayValue?.last
                == .object([
                    "destination": .string("/var/data"), "type": .string("tmpfs"), "source": .string("tmpfs"),
                    "options": .strings(["nosuid", "nodev", "mode=755"]),
                ]))
    }

    @Test func defaultsAndOverrides() throws {
        let execution = ImageConfig.Execution(
            env: ["A=1"], entrypoint: ["/bin/sh", "-c"], cmd: ["echo image"], workingDir: "rel")
        let plain = try RuntimeConfig.make(
            template: Self.minimalTemplate, image: Self.image(execution), users: Self.users)
        #expect(plain["process"]?["env"] == .strings(["A=1", "PATH=\(RuntimeConfig.defaultPath)", "HOME=/root"]))
        #expect(plain["process"]?["cwd"] == .string("/rel"))
        #expect(plain["process"]?["user"] == .object(["uid": .int(0), "gid": .int(0), "umask": .int(18)]))
        let overridden = try RuntimeConfig.make(
            template: Self.minimalTemplate, image: Self.image(execution), users: Self.users,
            overrides: ConfigOverrides(
                env: ["A=2", "B=3"], user: "1000:10", workingDir: "/tmp", args: ["echo override"]))
        #expect(overridden["process"]?["args"] == .strings(["/bin/sh", "-c", "echo override"]))
        #expect(
            overridden["process"]?["env"]
                == .strings(["A=2", "B=3", "PATH=\(RuntimeConfig.defaultPath)", "HOME=/home/app"]))
        #expect(overridden["process"]?["user"] == .object(["uid": .int(1000), "gid": .int(10), "umask": .int(18)]))
        #expect(overridden["process"]?["cwd"] == .string("/tmp"))
    }

    /// The output decides `root` and its own mounts: the bundle writer's private `rootfs`, or a
    /// root mounted elsewhere. Volumes still go after them, and never twice.
    @Test func theRootAndTheOutputsMountsAreInputs() throws {
        let execution = ImageConfig.Execution(volumes: ["/data": .init(), "/run/shared": .init()])
        let shared = JSONValue.object([
            "destination": .string("/run/shared"), "type": .string("bind"), "source": .string("/srv/shared"),
            "options": .strings(["rbind", "ro"]),
        ])
        let config = try RuntimeConfig.make(
            template: Self.minimalTemplate, image: Self.image(execution), users: Self.users,
            root: RuntimeConfig.Root(path: "/run/oci-unpack/merged", readonly: false, mounts: [shared]))
        #expect(config["root"] == .object(["path": .string("/run/oci-unpack/merged"), "readonly": .bool(false)]))
        let destinations = config["mounts"]?.arrayValue?.compactMap { $0["destination"]?.stringValue }
        #expect(destinations == ["/run/shared", "/proc", "/data"])

        let plain = try RuntimeConfig.make(
            template: Self.minimalTemplate, image: Self.image(.init()), users: Self.users)
        #expect(plain["root"] == .object(["path": .string("rootfs"), "readonly": .bool(true)]))
        #expect(plain["mounts"] == Self.minimalTemplate["mounts"])
    }

    @Test func nonLinuxImagesAreRefused() {
        let error = #expect(throws: UnpackError.self) {
            try RuntimeConfig.make(
                template: Self.minimalTemplate, image: Self.image(.init(cmd: ["x"]), os: "windows"), users: Self.users)
        }
        #expect(error?.code == .unsupportedMediaType)
        #expect(error?.message.contains("\"windows\"") == true)
    }

    @Test func exactBytes() throws {
        let template = JSONValue.object(["ociVersion": .string("1.0.2"), "process": .object([:])])
        var image = ImageConfig(
            platform: Platform(os: "linux", architecture: "amd64"), config: .init(cmd: ["/bin/true"]), diffIDs: [])
        image.created = nil
        let bytes = try RuntimeConfig.encode(
            RuntimeConfig.make(template: template, image: image, users: UserDatabase(passwd: nil, group: nil)))
        let expected = """
            {
              "annotations" : {
                "org.opencontainers.image.architecture" : "amd64",
                "org.opencontainers.image.os" : "linux"
              },
              "ociVersion" : "1.0.2",
              "process" : {
                "args" : [
                  "/bin/true"
                ],
                "cwd" : "/",
                "env" : [
                  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                ],
                "user" : {
                  "gid" : 0,
                  "uid" : 0
                }
              },
              "root" : {
                "path" : "rootfs"
              }
            }

            """
        #expect(String(decoding: bytes, as: UTF8.self) == expected)
    }

    @Test func builtInTemplateIsTheCheckedInFile() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("bundle-templates/default.json")
        let onDisk = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: file))
        #expect(try RuntimeConfig.defaultTemplate() == onDisk)
        #expect(onDisk["root"]?["path"] == .string("rootfs"))
        #expect(onDisk["process"]?["terminal"] == .bool(false))
    }

    @Test func templateErrors() throws {
        let missing = #expect(throws: UnpackError.self) { try RuntimeConfig.template(at: "/nonexistent/template.json") }
        #expect(missing?.code == .notFound)
        let path = NSTemporaryDirectory() + "/oci-unpack-bad-template-\(getpid()).json"
        try Data("[1,2]".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bad = #expect(throws: UnpackError.self) { try RuntimeConfig.template(at: path) }
        #expect(bad?.code == .invalidArgument)
        #expect(bad?.message.contains("not a runtime-spec configuration") == true)
    }

    @Test func infinityIsNotWritten() {
        let error = #expect(throws: UnpackError.self) {
            try RuntimeConfig.encode(.object(["process": .object([:]), "x": .array([.double(.infinity)])]))
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test func aBadTemplateNamesTheFileAndTheByte() throws {
        let path = NSTemporaryDirectory() + "/oci-unpack-broken-template-\(getpid()).json"
        try Data(#"{"process": {"args": [1,]}}"#.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: UnpackError.self) { try RuntimeConfig.template(at: path) }
        #expect(error?.code == .invalidArgument)
        #expect(
            error?.message
                == "template \(path) is not valid JSON: unexpected ']', expected a JSON value at byte 24")
    }
}
