import Glibc
import LayerEngine
import Testing

/// The flat, cleaned entry path the applier keys everything on.
@Suite struct EntryPathTests {
    static func clean(_ raw: String) -> String {
        String(decoding: EntryPath(cleaning: Array(raw.utf8)).key, as: UTF8.self)
    }

    @Test func cleaning() {
        let cases: [(String, String)] = [
            ("a/b/c", "a/b/c"), ("/a//b/./c/", "a/b/c"), ("a/../../b", "b"), ("./", ""), ("..", ""), ("", ""),
            ("/", ""), ("a/b/..", "a"), ("a/./.b/..c/.../", "a/.b/..c/..."), ("../../etc/passwd", "etc/passwd"),
            ("a/b/../../../c/d/..", "c"), ("x/", "x"),
        ]
        for (raw, cleaned) in cases {
            #expect(Self.clean(raw) == cleaned, "\(raw)")
        }
    }

    /// The one-pass check that skips the rebuild must agree with the rebuild on every input: all
    /// strings of up to 6 characters over `a . /`.
    @Test func fastPathAgreesWithTheComponentWalk() {
        var inputs: [[UInt8]] = [[]]
        var frontier: [[UInt8]] = [[]]
        for _ in 0..<6 {
            frontier = frontier.flatMap { prefix in Array("a./".utf8).map { prefix + [$0] } }
            inputs += frontier
        }
        for raw in inputs {
            var kept: [[UInt8]] = []
            for piece in raw.split(separator: UInt8(ascii: "/")) {
                if piece.elementsEqual(".".utf8) { continue }
                if piece.elementsEqual("..".utf8) {
                    if !kept.isEmpty { kept.removeLast() }
                    continue
                }
                kept.append(Array(piece))
            }
            let expected = Array(kept.joined(separator: [UInt8(ascii: "/")]))
            #expect(EntryPath(cleaning: raw).key == expected, "\(String(decoding: raw, as: UTF8.self))")
            #expect(EntryPath(components: kept) == EntryPath(cleaning: raw))
        }
    }

    @Test func nameParentAndComponents() {
        let p = EntryPath(cleaning: Array("usr/lib/x86_64/libc.so".utf8))
        #expect(String(decoding: p.name, as: UTF8.self) == "libc.so")
        #expect(p.parent == EntryPath(cleaning: Array("usr/lib/x86_64".utf8)))
        #expect(p.parentKey.elementsEqual("usr/lib/x86_64".utf8))
        #expect(p.components.map { String(decoding: $0, as: UTF8.self) } == ["usr", "lib", "x86_64", "libc.so"])
        #expect(p.description == "/usr/lib/x86_64/libc.so")
        let top = EntryPath(cleaning: Array("etc".utf8))
        #expect(top.parent == .root && top.parent.isRoot && top.parentKey.isEmpty)
        #expect(EntryPath.root.appending(Array("etc".utf8)) == top)
        #expect(top.appending(Array("passwd".utf8)).description == "/etc/passwd")
        #expect(EntryPath.root.name.isEmpty && EntryPath.root.components.isEmpty)
    }
}
