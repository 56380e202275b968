import ArgumentParser
import FoundationEssentials
import OCIUnpack

/// Prints an `UnpackError` as one line on stderr (and, with `--json`, as an object on stdout) and
/// exits with the error code's documented exit status.
struct CLIFailure: Error, CustomStringConvertible {
    let error: UnpackError
    let json: Bool

    var description: String { error.message }
}

extension CLIFailure {
    /// Reports and turns into the exit code ArgumentParser should use.
    func report() -> ExitCode {
        writeStandardError("oci-unpack: error: \(DisplayText.escaping(error.description))\n")
        if json {
            var object: [String: String] = ["code": error.code.name, "message": error.message]
            if let digest = error.context.digest { object["digest"] = digest.description }
            if let mediaType = error.context.mediaType { object["mediaType"] = mediaType.rawValue }
            if let layer = error.context.layerIndex { object["layerIndex"] = String(layer) }
            if let path = error.context.path { object["path"] = path }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            if let data = try? encoder.encode(["error": object]) {
                print(String(decoding: data, as: UTF8.self))
            }
        }
        return ExitCode(error.code.exitCode)
    }
}
