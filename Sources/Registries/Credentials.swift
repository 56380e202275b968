import FoundationEssentials
import Glibc
import OCIImage
import UnpackSystem

// Credentials for registries: --creds, auth files and docker credential helpers. They live beside
// the registry client, which alone asks for them: the image model only holds the options.
extension RegistryOptions {
    /// The credentials for `host`: `--creds`, else the first auth file that has an entry for it
    /// (`--authfile`, else those ``authFiles(environment:)`` lists), each read as
    /// ``entry(in:for:file:)`` says.
    /// A credential helper that takes longer than `helperTimeout` seconds is killed.
    package func credentials(for host: String, helperTimeout: Double) throws(UnpackError) -> (
        user: String, password: String
    )? {
        if let credentials { return credentials }
        let files = authFile.map { [$0] } ?? Self.authFiles(environment: ProcessInfo.processInfo.environment)
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else {
                if file == authFile {
                    // Why, in the kernel's words: open(2) says what FileManager does not.
                    let fd = open(file, O_RDONLY | O_CLOEXEC)
                    let e = fd >= 0 ? 0 : errno
                    if fd >= 0 { close(fd) }
                    let reason = e == 0 ? "it is not a readable file" : String(cString: strerror(e))
                    let code: UnpackError.Code = e == EACCES ? .permissionDenied : .notFound
                    throw UnpackError(
                        code, "the auth file \(file) cannot be read: \(reason)", context: .init(path: file))
                }
                continue
            }
            guard let found = try Self.entry(in: Array(data), for: host, file: file, helperTimeout: helperTimeout)
            else { continue }
            return found
        }
        return nil
    }

    /// The auth files read without `--authfile`, first to last, as containers-auth.json(5) orders
    /// them: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
    /// `$XDG_CONFIG_HOME/containers/auth.json` (`~/.config/containers/auth.json` without it), then
    /// docker's `~/.docker/config.json`.
    package static func authFiles(environment: [String: String]) -> [String] {
        var files: [String] = []
        if let file = environment["REGISTRY_AUTH_FILE"], !file.isEmpty { files.append(file) }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
            files.append(runtime + "/containers/auth.json")
        }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 }
        if let config = environment["XDG_CONFIG_HOME"], !config.isEmpty {
            files.append(config + "/containers/auth.json")
        } else if let home {
            files.append(home + "/.config/containers/auth.json")
        }
        if let home { files.append(home + "/.docker/config.json") }
        return files
    }

    /// The credentials an auth file gives for `host`: its `credHelpers` entry for the registry
    /// (run), else its `auths` entry (decoded), else its `credsStore` (run); `nil` when none has any.
    static func entry(in bytes: [UInt8], for host: String, file: String, helperTimeout: Double) throws(UnpackError)
        -> (user: String, password: String)?
    {
        let value = try ImageDocuments.requireStrictJSON(bytes, place: file)
        guard case .object(let top) = value else { return nil }
        var keys = [host, "https://\(host)", "http://\(host)"]
        if host == "docker.io" {
            keys = ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"] + keys
        }
        if case .object(let helpers)? = top["credHelpers"] {
            for key in keys {
                guard case .string(let helper)? = helpers[key] else { continue }
                return try CredentialHelper(name: helper, file: file, timeout: helperTimeout).get(key, for: host)
            }
        }
        if case .object(let auths)? = top["auths"] {
            for key in keys {
                guard case .object(let entry)? = auths[key], case .string(let auth)? = entry["auth"], !auth.isEmpty
                else { continue }
                guard let decoded = Data(base64Encoded: auth), let text = String(data: decoded, encoding: .utf8),
                    let colon = text.firstIndex(of: ":")
                else {
                    // The message names the file and the registry, never the value.
                    throw UnpackError(
                        .invalidArgument, "the auth entry for \(host) in \(file) is not base64 of USER:PASSWORD",
                        context: .init(path: file))
                }
                return (String(text[..<colon]), String(text[text.index(after: colon)...]))
            }
        }
        if case .string(let store)? = top["credsStore"], !store.isEmpty {
            return try CredentialHelper(name: store, file: file, timeout: helperTimeout).get(keys[0], for: host)
        }
        return nil
    }
}

/// A docker credential helper (`docker-credential-NAME` on PATH), asked with its `get` protocol:
/// the server's name on standard input, `{"ServerURL","Username","Secret"}` on standard output.
struct CredentialHelper {
    let name: String
    /// The auth file that named it, for messages.
    let file: String
    /// Seconds it may take; then it and its process group are killed.
    let timeout: Double

    /// The most a helper may write: its answer is a small JSON object.
    static let outputLimit = 1 << 16

    init(name: String, file: String, timeout: Double) throws(UnpackError) {
        // A NUL would cut the program's name short where the kernel reads it (the part before
        // it would run), and a control character has no place in a program's name.
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix("."),
            !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f })
        else {
            throw UnpackError(
                .invalidArgument,
                "\(file) names the credential helper \"\(name.truncatedForMessage)\", not a plain name",
                context: .init(path: file))
        }
        self.name = name
        self.file = file
        self.timeout = timeout
    }

    /// What the helper holds for `server` (the key it was stored under): `nil` when it has nothing
    /// (it says "credentials not found"). Its output is never shown: it carries the secret.
    func get(_ server: String, for host: String) throws(UnpackError) -> (user: String, password: String)? {
        let program = "docker-credential-\(name)"
        let reply: (status: Int32, output: [UInt8]?, timedOut: Bool)
        do throws(SystemError) {
            reply = try ChildProcess.run(
                program, arguments: ["get"], input: Array(server.utf8), outputLimit: Self.outputLimit,
                timeout: timeout)
        } catch {
            throw error.unpackError(
                "the credential helper \(program) (named in \(file)) cannot be run for \(host)",
                context: .init(path: file))
        }
        if reply.timedOut {
            throw UnpackError(
                .io,
                "the credential helper \(program) (named in \(file)) did not answer for \(host) within \(Int(timeout.rounded(.up))) s and was killed"
            )
        }
        guard let output = reply.output else {
            throw UnpackError(.invalidArgument, "the credential helper \(program) wrote too much for \(host)")
        }
        guard reply.status == 0 else {
            if String(decoding: output, as: UTF8.self).lowercased().contains("credentials not found") { return nil }
            throw UnpackError(
                .permissionDenied,
                "the credential helper \(program) (named in \(file)) failed for \(host) (exit status \(reply.status))")
        }
        guard case .object(let members)? = try? JSONValue(parsing: output),
            case .string(let user)? = members["Username"], case .string(let secret)? = members["Secret"]
        else {
            throw UnpackError(
                .invalidArgument, "the credential helper \(program) answered for \(host) without Username and Secret")
        }
        guard user != "<token>" else {
            throw UnpackError(
                .invalidArgument,
                "the credential helper \(program) holds an identity token for \(host) (an OAuth2 refresh token), which oci-unpack does not use; store USER:PASSWORD, or use --creds"
            )
        }
        return (user, secret)
    }
}
