import Foundation
import Glibc
import OCIImage
import OCIUnpack
import Synchronization
import Testing
import UnpackTestSupport

/// The async API: the work runs off the cooperative pool, and task cancellation stops it cleanly.
@Suite struct AsyncAPITests {
    static let request = ResolutionRequest(platform: Platform(os: "linux", architecture: "amd64"))

    @Test func anAsyncUnpackWritesTheBundleFromItsOwnThread() async throws {
        let f = try UnpackFixture()
        try f.oneFileImage()
        let threads = Mutex<Set<String>>([])
        var options = UnpackOptions()
        options.progress = { _ in
            let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
            threads.withLock { _ = $0.insert(comm.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        let result = try await Unpacker().unpack(
            "oci:\(f.builder.path):latest", into: f.bundle, request: Self.request, options: options)
        #expect(result.entries == [1])
        #expect(FileManager.default.fileExists(atPath: f.rootfs + "/hello"))
        #expect(threads.withLock { $0 } == ["oci-unpack"], "the layers are applied on the unpacker's thread")
    }

    @Test func cancellingTheTaskStopsTheUnpackAndLeavesNothing() async throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        for i in 0..<100 { t.file("f\(i)", "x") }
        try f.image(t)
        let started = Atomic<Bool>(false)
        // The caller's own token, which cancelling the task cancels too. The first progress report
        // waits for that: the unpack cannot finish before the cancellation, however busy the
        // machine.
        let token = Cancellation()
        var options = UnpackOptions()
        options.cancellation = token
        options.progress = { _ in
            started.store(true, ordering: .relaxed)
            while !token.isCancelled { usleep(1000) }
        }
        let bundle = f.bundle
        let reference = "oci:\(f.builder.path):latest"
        let task = Task { [options] in
            try await Unpacker().unpack(reference, into: bundle, request: Self.request, options: options)
        }
        while !started.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(1)) }
        task.cancel()
        let outcome = await task.result
        guard case .failure(let error) = outcome else {
            Issue.record("the unpack finished although its task was cancelled")
            return
        }
        #expect((error as? UnpackError)?.code == .interrupted)
        #expect(!FileManager.default.fileExists(atPath: bundle))
        let left = try FileManager.default.contentsOfDirectory(atPath: f.tmp.path).filter { $0 != "layout" }
        #expect(left.isEmpty, "nothing beside the bundle: \(left)")
    }

    @Test func aTaskCancelledBeforeItStartsDoesNoWork() async throws {
        let f = try UnpackFixture()
        try f.oneFileImage()
        let reference = "oci:\(f.builder.path):latest"
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await Unpacker().resolve(reference, request: Self.request)
        }
        let outcome = await task.result
        guard case .failure(let error) = outcome else {
            Issue.record("a cancelled task resolved")
            return
        }
        #expect((error as? UnpackError)?.code == .interrupted)
    }
}
