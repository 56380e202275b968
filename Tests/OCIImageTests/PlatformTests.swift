import OCIImage
import Testing

@Suite struct PlatformTests {
    @Test(arguments: [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/7", "linux/arm/v7"),
        ("Linux/ARM64", "linux/arm64"),
        ("linux/i686", "linux/386"),
        ("arm64", "linux/arm64"),
        ("windows(10.0.17763)/amd64", "windows(10.0.17763)/amd64"),
    ])
    func parsesAndNormalises(input: String, expected: String) throws {
        #expect(try Platform(parsing: input).description == expected)
    }

    @Test(arguments: ["", "linux/", "/amd64", "linux/amd64/v2/extra", "linux/am d64", "linux(/amd64", "linux()/amd64"])
    func rejectsMalformed(input: String) {
        let error = #expect(throws: UnpackError.self) { try Platform(parsing: input) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("invalid platform") == true)
    }

    @Test(arguments: [
        // requested, candidate, rank (nil: no match)
        ("linux/amd64", "linux/amd64", 0 as Int?),
        ("linux/amd64", "linux/arm64", nil),
        ("linux/amd64", "windows/amd64", nil),
        ("linux/arm/v7", "linux/arm/v7", 0),
        ("linux/arm/v7", "linux/arm/v6", 2),
        ("linux/arm/v7", "linux/arm/v5", 4),
        ("linux/arm/v6", "linux/arm/v7", nil),
        ("linux/arm/v8", "linux/arm/v7", 2),
        ("linux/amd64/v3", "linux/amd64/v2", 2),
        ("linux/amd64/v3", "linux/amd64", 4),
        ("linux/amd64", "linux/amd64/v2", nil),
        ("linux/arm64", "linux/arm/v7", nil),
        ("linux/x86_64", "linux/amd64/v1", 0),
    ])
    func matchRanks(requested: String, candidate: String, rank: Int?) throws {
        let want = try Platform(parsing: requested)
        let have = try Platform(parsing: candidate)
        #expect(want.matchRank(of: have) == rank)
    }

    @Test func osVersionPrefersExactThenUnversioned() {
        let want = Platform(os: "windows", architecture: "amd64", osVersion: "10.0.17763")
        #expect(want.matchRank(of: Platform(os: "windows", architecture: "amd64", osVersion: "10.0.17763")) == 0)
        #expect(want.matchRank(of: Platform(os: "windows", architecture: "amd64")) == 1)
        #expect(want.matchRank(of: Platform(os: "windows", architecture: "amd64", osVersion: "10.0.20348")) == nil)
    }

    @Test func osFeaturesMustBeOffered() {
        let plain = Platform(os: "windows", architecture: "amd64")
        let needsGMSA = Platform(os: "windows", architecture: "amd64", osFeatures: ["win32k"])
        #expect(plain.matchRank(of: needsGMSA) == nil)
        let offering = Platform(os: "windows", architecture: "amd64", osFeatures: ["win32k"])
        #expect(offering.matchRank(of: needsGMSA) == 0)
        #expect(offering.matchRank(of: plain) == 0)
    }

    @Test func hostIsNormalised() {
        let host = Platform.host
        #expect(host == host.normalized)
        #expect(host.os == "linux")
    }
}
