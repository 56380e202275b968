import Foundation
import UnpackTestSupport

/// Writes the example OCI layout (see `ExampleImage`) used by the README's quick start.
@main
struct MakeExample {
    static func main() throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard let output = arguments.first, arguments.count == 1 else {
            FileHandle.standardError.write(Data("usage: make-example OUTPUT-DIR\n".utf8))
            exit(64)
        }
        let busybox: [UInt8]
        do {
            busybox = try ExampleImage.hostBusybox()
        } catch {
            FileHandle.standardError.write(
                Data(
                    "make-example: \(ExampleImage.busyboxPath) is missing; run hack/setup (Debian's busybox-static)\n"
                        .utf8))
            exit(1)
        }
        try ExampleImage.write(to: output, busybox: busybox)
        print("make-example: wrote \(output) (tags latest, amd64-gzip, amd64-zstd, amd64-mixed)")
    }
}
