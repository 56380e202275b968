import Foundation
import Glibc
import LayerApply
import LayerStream
import LayoutSource
import OCIImage
import OCIUnpack
import Resolution
import RuntimeBundle
import Testing
import UnpackSystem
import UnpackTestSupport

import enum OCIImage.LayerCompression

/// The breakout catalogue: every class of hostile layer from spec-notes' "Known attacks", in
/// several shapes, with both in-root resolvers. After each case a canary directory beside the
/// bundle must be exactly as it was, and nothing may have appeared beside the bundle.
@Suite struct HostileLayerTests {
    /// A case: layers built with the canary's absolute path, and the expected error code (nil:
    /// the unpack succeeds, with everything confined to the rootfs).
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let expected: UnpackError.Code?
        /// Files that must end up inside the rootfs, with their content: `CANARY` in a path stands
        /// for the canary's absolute path without its leading slash (where a name that tried to
        /// reach it lands in the rootfs).
        let inRoot: [String: String]
        let layers: @Sendable (_ canary: String) -> [TarBuilder]
        var testDescription: String { name }

        init(
            name: String, expected: UnpackError.Code?, inRoot: [String: String] = [:],
            layers: @escaping @Sendable (_ canary: String) -> [TarBuilder]
        ) {
            self.name = name
            self.expected = expected
            self.inRoot = inRoot
            self.layers = layers
        }
    }

    static func layer(_ build: (inout TarBuilder) -> Void) -> TarBuilder {
        var t = TarBuilder()
        build(&t)
        return t
    }

    static let cases: [Case] = [
        Case(name: "dot-dot file name", expected: nil, inRoot: ["canary/file": "pwned", "canary/new": "pwned"]) { _ in
            [
                layer {
                    $0.file("../../canary/file", "pwned"); $0.file("../../../../../../canary/new", "pwned")
                }
            ]
        },
        Case(name: "absolute file name", expected: nil, inRoot: ["CANARY/file": "pwned"]) { canary in
            [
                layer {
                    $0.file(canary + "/file", "pwned"); $0.directory(canary + "/newdir/")
                }
            ]
        },
        Case(name: "write through symlink to / in one layer", expected: nil, inRoot: ["CANARY/file": "pwned"]) {
            canary in
            [
                layer {
                    $0.symlink("evil", to: "/"); $0.file("evil" + canary + "/file", "pwned")
                }
            ]
        },
        Case(name: "write through symlink to / across layers", expected: nil, inRoot: ["CANARY/file": "pwned"]) {
            canary in
            [layer { $0.symlink("evil", to: "/") }, layer { $0.file("evil" + canary + "/file", "pwned") }]
        },
        Case(name: "write through relative symlink up and out", expected: nil, inRoot: ["canary/file": "pwned"]) {
            _ in
            [layer { $0.symlink("evil", to: "../../canary") }, layer { $0.file("evil/file", "pwned") }]
        },
        Case(
            name: "write through absolute symlink to the canary", expected: nil,
            inRoot: ["CANARY/file": "pwned", "CANARY/new": "x"]
        ) { canary in
            [
                layer { $0.symlink("evil", to: canary) },
                layer {
                    $0.file("evil/file", "pwned"); $0.file("evil/new", "x")
                },
            ]
        },
        Case(name: "chain of symlinks", expected: nil, inRoot: ["CANARY/file": "pwned"]) { canary in
            [
                layer {
                    $0.symlink("a", to: "b"); $0.symlink("b", to: "c/../d"); $0.directory("c/");
                    $0.symlink("d", to: canary)
                },
                layer { $0.file("a/file", "pwned") },
            ]
        },
        Case(name: "directory entry ending in a slash over a symlink", expected: nil) { canary in
            [
                layer { $0.symlink("evil", to: canary) },
                layer { $0.add(.init(path: "evil/", kind: .directory, mode: 0o777, uid: 4242)) },
            ]
        },
        Case(name: "same-layer directory over a symlink", expected: nil) { canary in
            [
                layer {
                    $0.symlink("evil", to: canary); $0.add(.init(path: "evil/", kind: .directory, mode: 0o777))
                }
            ]
        },
        Case(name: "hardlink to a file outside by dot-dot", expected: .corruptLayer) { _ in
            [layer { $0.hardlink("h", to: "../../canary/file") }]
        },
        Case(name: "hardlink to a file outside by absolute path", expected: .corruptLayer) { canary in
            [layer { $0.hardlink("h", to: canary + "/file") }]
        },
        Case(name: "hardlink through a symlinked directory", expected: .corruptLayer) { canary in
            [layer { $0.symlink("d", to: canary) }, layer { $0.hardlink("h", to: "d/file") }]
        },
        Case(
            name: "hardlink to a symlink pointing out, then written", expected: nil,
            inRoot: ["h": "pwned", "s": "pwned"]
        ) {
            canary in
            [
                layer {
                    $0.symlink("s", to: canary + "/file"); $0.hardlink("h", to: "s")
                },
                layer {
                    $0.file("h", "pwned"); $0.file("s", "pwned")
                },
            ]
        },
        Case(name: "file replaces a symlink to a host file", expected: nil, inRoot: ["f": "pwned"]) { canary in
            [
                layer { $0.symlink("f", to: canary + "/file") },
                layer { $0.add(.init(path: "f", kind: .file(content: Array("pwned".utf8)), mode: 0o4777, uid: 4242)) },
            ]
        },
        Case(name: "metadata through a symlink (CVE-2021-32760)", expected: nil) { canary in
            [
                layer {
                    $0.symlink("x", to: canary + "/file"); $0.symlink("y", to: canary)
                },
                layer {
                    $0.add(
                        .init(
                            path: "x", kind: .file(content: []), mode: 0o777, uid: 4242, mtime: 1,
                            xattrs: ["user.pwned": Array("1".utf8)]))
                    $0.add(.init(path: "y/", kind: .directory, mode: 0o777, uid: 4242, mtime: 1))
                },
            ]
        },
        Case(name: "device node with an escaping name", expected: nil) { _ in
            [layer { $0.add(.init(path: "../../canary/dev", kind: .fifo)) }]
        },
        Case(name: "whiteout through a symlinked parent", expected: nil) { canary in
            [
                layer { $0.symlink("p", to: canary) },
                layer {
                    $0.whiteout("p/file"); $0.whiteout("p/dir")
                },
            ]
        },
        Case(
            name: "symlink entries owned by another user, pointing at the canary (lchown, not chown)", expected: nil
        ) { canary in
            [
                layer {
                    $0.add(.init(path: "to-file", kind: .symlink(target: canary + "/file"), uid: 4242, gid: 4242))
                    $0.add(.init(path: "to-dir", kind: .symlink(target: canary), uid: 4242, gid: 4242, mtime: 1))
                    $0.add(.init(path: "up", kind: .symlink(target: "../../canary/file"), uid: 4242, gid: 4242))
                }
            ]
        },
        Case(name: "whiteout with a dot-dot parent", expected: nil) { _ in
            [layer { $0.whiteout("../../canary/file") }]
        },
        Case(name: "opaque marker through a symlinked parent", expected: nil) { canary in
            [layer { $0.symlink("p", to: canary) }, layer { $0.opaque("p") }]
        },
        Case(name: "opaque marker through a relative symlink up", expected: nil) { _ in
            [layer { $0.symlink("p", to: "../../canary") }, layer { $0.opaque("p/dir") }]
        },
        Case(name: "whiteout of dot-dot", expected: .unsafePath) { _ in
            [layer { $0.add(.init(path: "canary/.wh..", kind: .file(content: []))) }]
        },
        Case(name: "symlink loop in a path", expected: .unsafePath) { _ in
            [
                layer {
                    $0.symlink("l1", to: "l2"); $0.symlink("l2", to: "l1"); $0.file("l1/x", "x")
                }
            ]
        },
    ]

    struct Harness {
        let f: UnpackFixture
        let canary: String
        let before: TreeSnapshot
        /// Every canary node's ctime: a chown or chmod that restores the old values still changes it.
        let ctimes: [String: timespec]

        init() throws {
            f = try UnpackFixture()
            canary = f.tmp.path + "/canary"
            try FileManager.default.createDirectory(atPath: canary + "/dir", withIntermediateDirectories: true)
            try Data("canary".utf8).write(to: URL(fileURLWithPath: canary + "/file"))
            try Data("inner".utf8).write(to: URL(fileURLWithPath: canary + "/dir/inner"))
            chmod(canary + "/file", 0o640)
            before = try TreeSnapshot(canary)
            ctimes = Self.ctimes(canary, before)
        }

        static func ctimes(_ canary: String, _ snapshot: TreeSnapshot) -> [String: timespec] {
            var out: [String: timespec] = [:]
            for path in snapshot.paths {
                var st = stat()
                if lstat(canary + "/" + path, &st) == 0 { out[path] = st.st_ctim }
            }
            return out
        }

        /// The files a case expects inside the rootfs, with their content.
        func verifyInRoot(_ expected: [String: String], _ sourceLocation: SourceLocation = #_sourceLocation) {
            for (path, content) in expected {
                let real = path.replacingOccurrences(of: "CANARY", with: String(canary.dropFirst()))
                let found = try? String(contentsOfFile: f.rootfs + "/" + real, encoding: .utf8)
                #expect(found == content, "rootfs/\(real)", sourceLocation: sourceLocation)
            }
        }

        func verifyUntouched(_ sourceLocation: SourceLocation = #_sourceLocation) throws {
            let after = try TreeSnapshot(canary)
            let differences = after.differences(from: before, ignoreDirectoryTimes: false, ignoreInodes: false)
            #expect(
                differences.isEmpty, "the canary changed:\n\(differences.joined(separator: "\n"))",
                sourceLocation: sourceLocation)
            #expect(extendedAttribute(canary + "/file", "user.pwned") == nil, sourceLocation: sourceLocation)
            let changed = Self.ctimes(canary, after).filter { path, ctime in
                ctimes[path].map { $0.tv_sec != ctime.tv_sec || $0.tv_nsec != ctime.tv_nsec } ?? true
            }
            #expect(changed.isEmpty, "canary ctime changed: \(changed.keys.sorted())", sourceLocation: sourceLocation)
            let beside = try FileManager.default.contentsOfDirectory(atPath: f.tmp.path).sorted()
            #expect(
                Set(beside).isSubset(of: ["bundle", "canary", "layout"]), "created beside the bundle: \(beside)",
                sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: cases, [false, true])
    func hostileLayerStaysContained(_ c: Case, userspaceResolver: Bool) throws {
        let h = try Harness()
        try h.f.image(c.layers(h.canary).map { ($0, LayerCompression.gzip) })
        let outcome = Result { () throws(UnpackError) in try h.f.unpack(userspaceResolver: userspaceResolver) }
        switch (outcome, c.expected) {
        case (.success, nil):
            h.verifyInRoot(c.inRoot)
        case (.failure(let error), let code?):
            #expect(error.code == code, "\(error)")
            #expect(!FileManager.default.fileExists(atPath: h.f.bundle), "a failed unpack leaves no bundle")
        case (.success, let code?):
            Issue.record("expected \(code), but the unpack succeeded")
        case (.failure(let error), nil):
            Issue.record("expected success, got \(error)")
        }
        try h.verifyUntouched()
    }

    @Test func writesLandInsideTheRootfs() throws {
        let h = try Harness()
        try h.f.image(
            [
                (Self.layer { $0.symlink("evil", to: "/") }, .gzip),
                (Self.layer { $0.file("evil" + h.canary + "/file", "inside") }, .zstd),
            ])
        try h.f.unpack()
        #expect(try h.f.read(String(h.canary.dropFirst()) + "/file") == "inside")
        try h.verifyUntouched()
    }
}
