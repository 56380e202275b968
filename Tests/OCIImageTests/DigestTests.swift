import Foundation
import OCIImage
import Testing

@Suite struct DigestTests {
    static let hex64 = String(repeating: "ab", count: 32)

    @Test func parsesSha256AndSha512() throws {
        let d = try Digest(parsing: "sha256:\(Self.hex64)")
        #expect(d.algorithm == .sha256)
        #expect(d.encoded == Self.hex64)
        #expect(d.description == "sha256:\(Self.hex64)")
        let d512 = try Digest(parsing: "sha512:" + String(repeating: "0", count: 128))
        #expect(d512.algorithm == .sha512)
    }

    @Test(arguments: [
        "sha256", "sha256:", "sha256:abc", "sha256:" + String(repeating: "AB", count: 32),
        "sha256:../../../../etc/passwd" + String(repeating: "a", count: 36),
        "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:" + String(repeating: "g", count: 64),
        "sha256:" + String(repeating: "a", count: 65), ":" + String(repeating: "a", count: 64),
        "sha512:" + String(repeating: "a", count: 64),
    ])
    func rejectsInvalid(text: String) {
        let error = #expect(throws: UnpackError.self) { try Digest(parsing: text) }
        #expect(error?.code == .invalidImage)
    }

    @Test func hashesKnownVector() {
        #expect(
            Digest.of(Array("abc".utf8)).description
                == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            Digest.of(Array("abc".utf8), algorithm: .sha512).encoded.hasPrefix("ddaf35a193617aba"))
    }

    @Test func decodesOnlyValidDigestsFromJSON() throws {
        struct Box: Decodable { let d: Digest }
        let good = #"{"d":"sha256:\#(Self.hex64)"}"#
        #expect(try JSONDecoder().decode(Box.self, from: Data(good.utf8)).d.encoded == Self.hex64)
        let bad = #"{"d":"sha256:../x"}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Box.self, from: Data(bad.utf8)) }
    }
}
