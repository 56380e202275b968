import Foundation
import OCIUnpack
import Synchronization

/// One self-overwriting line on stderr per layer: `layer 2/3 sha256:abcdef012345  12.1/40.0 MiB`.
/// Updates are throttled to ten a second; a finished layer keeps its final line.
final class ProgressLine: Sendable {
    private struct State {
        var lastDraw: UInt64 = 0
        var drawn = false
    }

    private let state = Mutex(State())

    func update(_ p: UnpackProgress) {
        let now = DispatchTime.now().uptimeNanoseconds
        let line = state.withLock { s -> String? in
            guard p.layerFinished || now - s.lastDraw > 100_000_000 else { return nil }
            s.lastDraw = now
            s.drawn = !p.layerFinished
            let text =
                "layer \(p.layerIndex + 1)/\(p.layerCount) \(p.digest.algorithm.rawValue):\(p.digest.short)  "
                + "\(Self.mebibytes(p.bytesDone))/\(Self.mebibytes(p.bytesTotal)) MiB"
            return "\r\u{1B}[K" + text + (p.layerFinished ? "\n" : "")
        }
        if let line { FileHandle.standardError.write(Data(line.utf8)) }
    }

    /// Ends an unfinished line (before an error message or the summary).
    func finish() {
        let pending = state.withLock { s in
            defer { s.drawn = false }
            return s.drawn
        }
        if pending { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    private static func mebibytes(_ bytes: Int64) -> String {
        String(format: "%.1f", Double(bytes) / 1_048_576)
    }
}
