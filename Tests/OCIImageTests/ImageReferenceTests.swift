import OCIImage
import Testing

@Suite struct ImageReferenceTests {
    static let hex = String(repeating: "c", count: 64)

    @Test(arguments: [
        ("oci:/images/app:latest", "/images/app", ImageReference.Selector.tag("latest")),
        ("/images/app:v1.2", "/images/app", .tag("v1.2")),
        ("oci:/images/app", "/images/app", .only),
        ("./app", "./app", .only),
        ("oci:app:1.0-rc_1", "app", .tag("1.0-rc_1")),
    ])
    func parsesTagsAndPaths(text: String, path: String, selector: ImageReference.Selector) throws {
        let ref = try ImageReference(parsing: text, isDirectory: { _ in false })
        #expect(ref.layoutPath == path)
        #expect(ref.selector == selector)
    }

    @Test func parsesDigest() throws {
        let ref = try ImageReference(parsing: "oci:/images/app@sha256:\(Self.hex)", isDirectory: { _ in false })
        #expect(ref.layoutPath == "/images/app")
        #expect(ref.selector == .digest(try Digest(parsing: "sha256:\(Self.hex)")))
        #expect(ref.description == "oci:/images/app@sha256:\(Self.hex)")
    }

    @Test func keepsColonInAnExistingDirectoryName() throws {
        let ref = try ImageReference(parsing: "/data/img:2024", isDirectory: { $0 == "/data/img:2024" })
        #expect(ref.layoutPath == "/data/img:2024")
        #expect(ref.selector == .only)
    }

    /// Found by fuzz-reference: a path starting with a combining mark merged with the colon before
    /// it into one Character, so the printed reference did not parse back.
    @Test func combiningMarkAfterColonRoundTrips() throws {
        let ref = try ImageReference(parsing: "\u{656}dir:tag", isDirectory: { _ in false })
        #expect(ref.layoutPath == "\u{656}dir")
        #expect(ref.selector == .tag("tag"))
        let again = try ImageReference(parsing: ref.description, isDirectory: { _ in false })
        #expect(again == ref)
    }

    @Test(arguments: ["", "oci:", "oci:/x@sha256:short", "oci:@sha256:" + String(repeating: "c", count: 64), "/x:"])
    func rejectsMalformed(text: String) {
        let error = #expect(throws: UnpackError.self) { try ImageReference(parsing: text, isDirectory: { _ in false }) }
        #expect(error?.code == .invalidArgument)
    }
}
