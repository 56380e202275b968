import Foundation
import LayerApply
import LayerStream
import LayoutSource
import OCIImage
import OCIUnpack
import OCIUnpackCLI
import Resolution
import RuntimeBundle
import Testing
import UnpackSystem
import UnpackTestSupport

import struct OCIImage.MediaType

/// Names from an image never forge lines or reach the terminal raw: every message and `inspect`
/// text escapes control characters, bidirectional overrides and invalid UTF-8.
@Suite struct EscapedOutputTests {
    @Test func displayTextEscapes() {
        #expect(DisplayText.escaping(Array("plain/name".utf8)) == "plain/name")
        #expect(DisplayText.escaping(Array("a\nb\u{1b}[31m\t".utf8)) == "a\\nb\\x1b[31m\\t")
        #expect(DisplayText.escaping([0x61, 0xff, 0xc3, 0xa9, 0xe2, 0x82]) == "a\\xffé\\xe2\\x82")
        #expect(
            DisplayText.escaping([0xc0, 0xaf, 0xed, 0xa0, 0x80]) == "\\xc0\\xaf\\xed\\xa0\\x80", "overlong, surrogate")
        #expect(DisplayText.escaping("x\u{202e}y\u{85}") == "x\\u{202e}y\\x85")
        #expect(DisplayText.escaping("ünïcode ok") == "ünïcode ok")
        // A backslash in a name is escaped, so that `a\nb` cannot pass for a newline; in a message,
        // whose names were escaped already, it is kept.
        #expect(DisplayText.escaping(Array("a\\nb".utf8)) == "a\\\\nb")
        #expect(DisplayText.escaping("a\\nb") == "a\\nb")
    }

    /// An error about an entry whose name holds a newline and an escape sequence: one line.
    @Test func errorNamingAHostileEntryIsOneLine() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.add(.init(path: "x\nforged: line\u{1b}[2J", kind: .hardlink(target: "missing\n\u{1b}]0;title\u{07}")))
        try f.image(t)
        let r = try Command.run(Command.ociUnpack, ["unpack", "-q", f.builder.path, f.bundle])
        #expect(r.status == UnpackError.Code.corruptLayer.exitCode, "\(r.stderr)")
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.filter { $0.contains("oci-unpack: error:") }.count == 1, "\(r.stderr)")
        #expect(lines.allSatisfy { $0.contains("oci-unpack") }, "a forged line: \(r.stderr)")
        #expect(!r.stderr.contains("\u{1b}") && !r.stderr.contains("\u{07}"), "\(r.stderr)")
        #expect(r.stderr.contains("x\\nforged: line\\x1b[2J"), "\(r.stderr)")
        #expect(r.stderr.contains("missing\\n\\x1b]0;title\\x07"), "\(r.stderr)")
    }

    /// Warnings (aufs metadata is skipped) escape invalid UTF-8 and control characters too.
    @Test func warningsAreEscaped() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        var aufs = TarBuilder.Entry(path: "x", kind: .file(content: []))
        aufs.pathBytes = Array("d\n".utf8) + [0xff] + Array("/.wh..wh.meta".utf8)
        t.add(aufs)
        t.file("ok", "ok")
        try f.image(t)
        let r = try Command.run(Command.ociUnpack, ["unpack", "-q", f.builder.path, f.bundle])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("ignoring aufs metadata entry d\\n\\xff/.wh..wh.meta"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").allSatisfy { $0.contains("oci-unpack") }, "\(r.stderr)")
    }

    /// `inspect` text: a media type from the image with a newline and an escape sequence stays on
    /// its line.
    @Test func inspectTextEscapesImageStrings() throws {
        let tmp = try TemporaryDirectory()
        let b = try LayoutBuilder(path: tmp.path + "/img")
        var t = TarBuilder()
        t.file("a", "a")
        let good = try b.image(layers: [b.layer(t.bytes(), compression: .gzip)])
        let evil = try b.image(
            layers: [b.layer(t.bytes(), compression: .gzip, mediaType: MediaType("application/x\nforged\u{1b}[2J"))])
        b.tag(try b.index([evil, good]), "v1")
        try b.write()
        let r = try Command.run(Command.ociUnpack, ["inspect", "--platform", "linux/amd64", "oci:\(b.path):v1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.contains("\u{1b}"), "\(r.stdout)")
        #expect(!r.stdout.split(separator: "\n").contains { $0.hasPrefix("forged") }, "\(r.stdout)")
        #expect(r.stdout.contains("application/x\\nforged\\x1b[2J"), "\(r.stdout)")
    }
}
