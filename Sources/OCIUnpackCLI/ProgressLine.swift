import Glibc
import OCIUnpack
import Synchronization
import UnpackSystem

/// One self-overwriting line on stderr per layer: `layer 2/3 sha256:abcdef012345  12.1/40.0 MiB`.
/// Updates are throttled to ten a second; a finished layer keeps its final line.
final class ProgressLine: Sendable {
    private struct State {
        var lastDraw: UInt64 = 0
        var drawn = false
    }

    private let state = Mutex(State())

    func update(_ p: UnpackProgress) {
        var clock = timespec()
        clock_gettime(CLOCK_MONOTONIC, &clock)
        let now = UInt64(clock.tv_sec) * 1_000_000_000 + UInt64(clock.tv_nsec)
        let line = state.withLock { s -> String? in
            guard p.layerFinished || now - s.lastDraw > 100_000_000 else { return nil }
            s.lastDraw = now
            s.drawn = !p.layerFinished
            let text =
                "layer \(p.layerIndex + 1)/\(p.layerCount) \(p.digest.algorithm.rawValue):\(p.digest.short)  "
                + "\(Self.mebibytes(p.bytesDone))/\(Self.mebibytes(p.bytesTotal)) MiB"
            return "\r\u{1B}[K" + text + (p.layerFinished ? "\n" : "")
        }
        if let line { writeStandardError(line) }
    }

    /// Ends an unfinished line (before an error message or the summary).
    func finish() {
        let pending = state.withLock { s in
            defer { s.drawn = false }
            return s.drawn
        }
        if pending { writeStandardError("\n") }
    }

    /// `bytes` in MiB with one decimal, rounded half up: 12.1.
    static func mebibytes(_ bytes: Int64) -> String {
        let tenths = (max(bytes, 0) * 10 + 524_288) / 1_048_576
        return "\(tenths / 10).\(tenths % 10)"
    }
}

/// Writes `text` to fd 2; errors are ignored, as for any diagnostic output.
func writeStandardError(_ text: String) {
    try? writeAll(2, Array(text.utf8), path: "standard error")
}
