import FoundationEssentials
import Glibc
import OCIImage
import Resolution
import UnpackSystem

/// Verifier programs (`--verifier-dir DIR`), run as containerd 2.0's `bindir` image verifier runs
/// them, for sites whose policy lives elsewhere: every executable regular file in DIR, in name
/// order, gets `-name REFERENCE -digest MANIFEST-DIGEST -stdin-media-type
/// application/vnd.oci.descriptor.v1+json` and the manifest's descriptor on stdin; it must exit 0
/// within its time, writing at most 32 KiB (its first line is the reason shown). One refusal ends
/// the unpack before any layer is fetched.
enum ImageVerifiers {
    static let outputLimit = 32 << 10

    static func check(_ image: ResolvedImage, directory: String, timeout: Double) throws(UnpackError) {
        let programs = try self.programs(in: directory)
        guard !programs.isEmpty else {
            // An empty directory admits everything (as containerd's); a typo must not do so silently.
            throw UnpackError(
                .policyRejected, "the verifier directory \(directory) holds no executable program",
                context: .init(path: directory))
        }
        let descriptor = image.manifestDescriptor
        let input = Array(try encoded(descriptor))
        for program in programs {
            let reply: (status: Int32, output: [UInt8]?, timedOut: Bool)
            do throws(SystemError) {
                reply = try ChildProcess.run(
                    program,
                    arguments: [
                        "-name", image.reference, "-digest", descriptor.digest.description, "-stdin-media-type",
                        "application/vnd.oci.descriptor.v1+json",
                    ], input: input, outputLimit: outputLimit, timeout: timeout)
            } catch {
                throw error.unpackError("the verifier \(program) cannot be run", context: .init(path: program))
            }
            let context = UnpackError.Context(digest: descriptor.digest, path: program)
            if reply.timedOut {
                throw UnpackError(
                    .policyRejected,
                    "the verifier \(program) did not decide on \(image.reference) (\(descriptor.digest)) within \(timeout) s and was killed",
                    context: context)
            }
            guard let output = reply.output else {
                throw UnpackError(
                    .policyRejected, "the verifier \(program) wrote more than \(outputLimit) bytes", context: context)
            }
            guard reply.status == 0 else {
                let said = String(decoding: output, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
                throw UnpackError(
                    .policyRejected,
                    "the verifier \(program) refused \(image.reference) (\(descriptor.digest)), exit status \(reply.status)"
                        + (said.isEmpty ? "" : ": \(DisplayText.escaping(said.truncatedForMessage))"),
                    context: context)
            }
        }
    }

    /// The executable regular files of `directory`, by name.
    static func programs(in directory: String) throws(UnpackError) -> [String] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw UnpackError(
                .notFound, "the verifier directory \(directory) cannot be read", context: .init(path: directory))
        }
        return names.sorted().compactMap { name -> String? in
            let path = directory + "/" + name
            guard case .success(let st) = fileStatus(path), st.isRegularFile, st.st_mode & 0o111 != 0 else {
                return nil
            }
            return path
        }
    }

    /// The descriptor as OCI writes it (and `inspect --json` shows it): Descriptor's own encoding.
    static func encoded(_ descriptor: Descriptor) throws(UnpackError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(descriptor) else {
            throw UnpackError(.internal, "the descriptor of \(descriptor.digest) cannot be encoded")
        }
        return Array(data)
    }
}
