import Foundation
import Glibc
import OCIImage
import Registries
import Testing
import UnpackTestSupport

/// Credential helpers are bounded: in time (then their whole process group is killed), in what
/// they write, and in what may name them.
@Suite(.serialized) struct CredentialHelperTests {
    /// A directory of `docker-credential-NAME` scripts put first on PATH, and an auth file naming
    /// `helper` for `reg.example`.
    final class Helpers {
        let tmp: TemporaryDirectory
        var bin: String { tmp.path + "/bin" }
        var authFile: String { tmp.path + "/auth.json" }
        let savedPath: String

        init(_ scripts: [String: String], helper: String) throws {
            tmp = try TemporaryDirectory()
            try FileManager.default.createDirectory(atPath: tmp.path + "/bin", withIntermediateDirectories: true)
            for (name, body) in scripts {
                let path = tmp.path + "/bin/docker-credential-" + name
                try ("#!/bin/sh\n" + body).write(toFile: path, atomically: true, encoding: .utf8)
                try #require(chmod(path, 0o755) == 0)
            }
            let escaped = helper.unicodeScalars.map {
                $0.value < 0x20 ? String(format: "\\u%04x", $0.value) : String($0)
            }
            .joined()
            try Data(#"{"credHelpers":{"reg.example":"\#(escaped)"}}"#.utf8).write(
                to: URL(fileURLWithPath: tmp.path + "/auth.json"))
            savedPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
            setenv("PATH", "\(tmp.path)/bin:\(savedPath)", 1)
        }

        deinit { setenv("PATH", savedPath, 1) }

        func credentials(timeout: Double) throws(UnpackError) -> (user: String, password: String)? {
            try RegistryOptions(authFile: authFile).credentials(for: "reg.example", helperTimeout: timeout)
        }

        func pid(_ name: String) throws -> pid_t {
            let text = try String(contentsOfFile: tmp.path + "/" + name, encoding: .utf8)
            return try #require(pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
    }

    /// Whether `pid` is gone (or a zombie waiting for whoever inherited it), within a few seconds.
    static func ends(_ pid: pid_t) -> Bool {
        for _ in 0..<200 {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
            if let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" { return true }
            usleep(10_000)
        }
        return false
    }

    /// Without --authfile the files are read in containers-auth.json(5)'s order, podman's
    /// `~/.config/containers/auth.json` included; the first with an entry for the host wins.
    @Test func authFilesAreReadInPodmansOrder() throws {
        let full = [
            "REGISTRY_AUTH_FILE": "/a.json", "XDG_RUNTIME_DIR": "/run/u", "XDG_CONFIG_HOME": "/c", "HOME": "/h",
        ]
        #expect(
            RegistryOptions.authFiles(environment: full) == [
                "/a.json", "/run/u/containers/auth.json", "/c/containers/auth.json", "/h/.docker/config.json",
            ])
        #expect(
            RegistryOptions.authFiles(environment: ["HOME": "/h"]) == [
                "/h/.config/containers/auth.json", "/h/.docker/config.json",
            ])
        #expect(RegistryOptions.authFiles(environment: ["REGISTRY_AUTH_FILE": ""]).isEmpty)
    }

    /// Issue: a helper that sleeps hung `inspect`/`unpack` for ever.
    @Test(.timeLimit(.minutes(1))) func aHelperThatDoesNotAnswerIsKilled() throws {
        let helpers = try Helpers(
            ["sleepy": "echo $$ > \"$(dirname \"$0\")/../helper.pid\"\nexec sleep 600\n"], helper: "sleepy")
        let error = #expect(throws: UnpackError.self) { try helpers.credentials(timeout: 1) }
        #expect(error?.code == .io)
        #expect(
            error?.message.contains("did not answer for reg.example within 1 s and was killed") == true,
            "\(error?.message ?? "")")
        #expect(Self.ends(try helpers.pid("helper.pid")))
    }

    /// Issue: a helper whose background child kept its standard output open hung the pull after
    /// the helper had answered. Its answer is used, and the child is killed with its group.
    @Test(.timeLimit(.minutes(1))) func aBackgroundChildHoldingTheOutputDoesNotHoldThePull() throws {
        let script = """
            sleep 600 &
            echo $! > "$(dirname "$0")/../child.pid"
            printf '{"ServerURL":"reg.example","Username":"alice","Secret":"s3cret"}'
            """
        let helpers = try Helpers(["forks": script], helper: "forks")
        let found = try helpers.credentials(timeout: 20)
        #expect(found?.user == "alice")
        #expect(found?.password == "s3cret")
        #expect(Self.ends(try helpers.pid("child.pid")), "the helper's background child outlived it")
    }

    /// A helper that writes without end is cut off at the limit, not read for ever.
    @Test(.timeLimit(.minutes(1))) func aHelperThatWritesTooMuchIsRefused() throws {
        let helpers = try Helpers(["chatty": "exec yes\n"], helper: "chatty")
        let error = #expect(throws: UnpackError.self) { try helpers.credentials(timeout: 20) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("wrote too much") == true, "\(error?.message ?? "")")
    }

    /// Issue: a helper name with a NUL ran the program named by the part before it. Names with a
    /// NUL or any control character are refused, and nothing runs.
    @Test(arguments: ["evil\u{0}x", "evil\u{1b}[2J", "evil\n"])
    func aHelperNameWithAControlCharacterIsRefused(name: String) throws {
        let helpers = try Helpers(["evil": "touch \"$(dirname \"$0\")/../ran\"\nexit 1\n"], helper: name)
        let error = #expect(throws: UnpackError.self) { try helpers.credentials(timeout: 20) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("not a plain name") == true, "\(error?.message ?? "")")
        #expect(!FileManager.default.fileExists(atPath: helpers.tmp.path + "/ran"), "the helper ran")
    }
}
