import Glibc
import LayerEngine
import LayerStream
import LayoutSource
import OCIImage
import Resolution
import TarArchive
import Testing
import UnpackSystem
import UnpackTestSupport

/// The one layer loop: what a consumer is told, and when.
@Suite struct LayerDriverTests {
    /// Every call a consumer receives, in order.
    final class Recorder: LayerConsumer {
        var events: [String] = []
        let reads: Bool
        init(reads: Bool = true) { self.reads = reads }
        var readsEntries: Bool { reads }
        func beginLayer(at position: Int) throws(UnpackError) { events.append("begin \(position)") }
        func consume(_ entry: TarEntry, from reader: TarReader) throws(UnpackError) {
            events.append("entry \(String(decoding: entry.path, as: UTF8.self))")
        }
        func endEntries() throws(UnpackError) { events.append("end") }
        func commitLayer(at position: Int) throws(UnpackError) { events.append("commit \(position)") }
        func abandonLayer(at position: Int) { events.append("abandon \(position)") }
        func finish() throws(UnpackError) { events.append("finish") }
    }

    /// A layout holding `tars` as gzip layers; the layers as resolution gives them, the diff_id
    /// of layer `wrongDiffID` replaced.
    static func layers(_ tars: [TarBuilder], in tmp: TemporaryDirectory, wrongDiffID: Int? = nil) throws -> (
        OCILayout, [ResolvedImage.Layer]
    ) {
        let builder = try LayoutBuilder(path: tmp.path + "/layout")
        let built = try tars.map { try builder.layer($0.bytes(), compression: .gzip) }
        try builder.write()
        let layers = built.enumerated().map { i, layer in
            ResolvedImage.Layer(
                index: i, descriptor: layer.descriptor, compression: .gzip,
                diffID: i == wrongDiffID ? Digest.of(Array("other".utf8)) : layer.diffID)
        }
        return (try OCILayout(path: tmp.path + "/layout"), layers)
    }

    static func tar(_ names: String...) -> TarBuilder {
        var t = TarBuilder()
        for name in names { t.file(name, name) }
        return t
    }

    @Test func layersAreCommittedInOrderAfterTheirStreamsVerified() throws {
        let tmp = try TemporaryDirectory()
        let (source, layers) = try Self.layers([Self.tar("a", "b"), Self.tar("c")], in: tmp)
        let recorder = Recorder()
        var progress: [(Int, Bool)] = []
        let entries = try LayerDriver(
            source: source, layers: layers,
            settings: .init(readAhead: 1, progress: { progress.append(($0.position, $0.finished)) })
        ).run(into: recorder)
        #expect(entries == [2, 1])
        #expect(
            recorder.events == [
                "begin 0", "entry a", "entry b", "end", "commit 0", "begin 1", "entry c", "end", "commit 1", "finish",
            ])
        #expect(progress.filter(\.1).map(\.0) == [0, 1], "one final report per layer")
    }

    @Test func aLayerThatFailsItsDiffIDIsAbandonedNotCommitted() throws {
        let tmp = try TemporaryDirectory()
        let (source, layers) = try Self.layers([Self.tar("a"), Self.tar("b")], in: tmp, wrongDiffID: 1)
        let recorder = Recorder()
        #expect {
            try LayerDriver(source: source, layers: layers, settings: .init()).run(into: recorder)
        } throws: { error in
            let e = error as? UnpackError
            return e?.code == .digestMismatch && e?.context.layerIndex == 1
                && e?.context.digest == layers[1].descriptor.digest
        }
        #expect(recorder.events == ["begin 0", "entry a", "end", "commit 0", "begin 1", "entry b", "end", "abandon 1"])
    }

    @Test func aVerificationReadsNoEntriesAndStillChecksTheBlob() throws {
        let tmp = try TemporaryDirectory()
        let (source, layers) = try Self.layers([Self.tar("a")], in: tmp)
        let recorder = Recorder(reads: false)
        try LayerDriver(source: source, layers: layers, settings: .init()).run(into: recorder)
        #expect(recorder.events == ["begin 0", "commit 0", "finish"])

        var corrupt = layers
        corrupt[0] = ResolvedImage.Layer(
            index: 0, descriptor: layers[0].descriptor, compression: .gzip, diffID: Digest.of(Array("x".utf8)))
        #expect {
            try LayerDriver(source: source, layers: corrupt, settings: .init()).run(into: VerifyingConsumer())
        } throws: { ($0 as? UnpackError)?.code == .digestMismatch }
    }

    @Test func aCheckpointStopsBetweenEntries() throws {
        let tmp = try TemporaryDirectory()
        let (source, layers) = try Self.layers([Self.tar("a", "b", "c")], in: tmp)
        let recorder = Recorder()
        var calls = 0
        let stop: () throws(UnpackError) -> Void = { () throws(UnpackError) in
            calls += 1
            if calls == 3 { throw UnpackError(.interrupted, "stopped") }
        }
        #expect {
            try LayerDriver(source: source, layers: layers, settings: .init(checkpoint: stop)).run(into: recorder)
        } throws: { ($0 as? UnpackError)?.code == .interrupted }
        #expect(recorder.events == ["begin 0", "entry a", "abandon 0"])
    }

    @Test func theRulesSayWhatAnEntryAsks() throws {
        func action(_ path: String, _ kind: TarEntry.Kind = .regular) throws(UnpackError) -> LayerRules.Action {
            let entry = TarEntry(path: Array(path.utf8), kind: kind)
            return try LayerRules.action(entry, at: EntryPath(cleaning: entry.path))
        }
        #expect(try action("d/.wh.x") == .whiteout(hidden: Array("x".utf8)))
        #expect(try action("d/.wh..wh..opq") == .opaque)
        #expect(try action(".wh..wh.plnk") == .aufsMetadata)
        #expect(try action("./", .directory) == .describeRoot)
        #expect(try action("s", .socket) == .socket)
        #expect(try action("f") == .create)
        for invalid in [".wh.", "d/.wh..", "d/.wh..."] {
            #expect(throws: UnpackError.self) { try action(invalid) }
        }
        #expect(throws: UnpackError.self) { try action("/", .regular) }
    }
}
