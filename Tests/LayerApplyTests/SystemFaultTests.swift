import Foundation
import Glibc
import LayerApply
import LayerEngine
import LayerStream
import OCIImage
import TarArchive
import Testing
import UnpackSystem
import UnpackTestSupport

/// What the kernel can refuse while a tree is written: a full disk, a failing device, a signal.
/// Each fault is injected into one applier's system calls (`SystemCalls.failing`).
@Suite struct SystemFaultTests {
    static func layer() -> TarBuilder {
        var t = TarBuilder()
        t.directory("etc/")
        t.file("etc/small", "s")
        t.add(.init(path: "big", kind: .file(content: [UInt8](repeating: 7, count: 300_000))))
        t.file("last", "l")
        return t
    }

    static func apply(_ calls: SystemCalls, parallel: Bool = true) throws(UnpackError) -> TemporaryDirectory {
        guard let tmp = try? TemporaryDirectory() else { throw UnpackError(.io, "no temporary directory") }
        var options = ApplyOptions(
            ownership: geteuid() == 0 ? .preserve : .rootless, finishFilesInParallel: parallel, limits: .init())
        options.systemCalls = calls
        let applier = try Applier(rootPath: tmp.path, options: options)
        try applier.apply(try TarReader(upstream: MemoryStream(Self.layer().bytes())))
        try applier.finish()
        return tmp
    }

    static func failure(_ calls: SystemCalls, parallel: Bool = true) -> UnpackError? {
        do throws(UnpackError) {
            _ = try apply(calls, parallel: parallel)
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [true, false])
    func aFullDiskFailsTheEntryBeingWritten(parallel: Bool) throws {
        // Every write fails: the first file written (small files are finished on a second
        // thread, so which one comes first depends on it) is named.
        let error = try #require(Self.failure(.failing(.write, errno: ENOSPC), parallel: parallel))
        #expect(error.code == .io)
        #expect(["etc/small", "big"].contains(error.context.path), "\(error)")
        #expect(error.description.contains("No space left on device"), "\(error)")
    }

    @Test func aFullDiskInALargeFileNamesIt() throws {
        // Written in entry order: etc/small's write succeeds, big's first block fails.
        let error = try #require(Self.failure(.failing(.write, errno: ENOSPC, after: 1), parallel: false))
        #expect(error.code == .io && error.context.path == "big", "\(error)")
    }

    @Test func anIOErrorCreatingAFileOrADirectoryNamesIt() throws {
        // Files are created in entry order: etc/small, big, then last fails.
        let file = try #require(Self.failure(.failing(.openat, errno: EIO, after: 2)))
        #expect(file.code == .io && file.context.path == "last", "\(file)")
        let directory = try #require(Self.failure(.failing(.mkdirat, errno: EIO)))
        #expect(directory.code == .io && directory.context.path == "etc/", "\(directory)")
    }

    @Test(arguments: [true, false])
    func interruptedWritesAreRetried(parallel: Bool) throws {
        let tmp = try Self.apply(.failing(.write, errno: EINTR, times: 3), parallel: parallel)
        let root = tmp.path
        #expect(try Data(contentsOf: URL(fileURLWithPath: root + "/big")) == Data(repeating: 7, count: 300_000))
        #expect(try String(contentsOfFile: root + "/etc/small", encoding: .utf8) == "s")
    }
}
