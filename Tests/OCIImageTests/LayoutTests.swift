import Foundation
import LayoutSource
import OCIImage
import Testing
import UnpackTestSupport

@Suite struct LayoutTests {
    let tmp: TemporaryDirectory
    let builder: LayoutBuilder

    init() throws {
        tmp = try TemporaryDirectory()
        builder = try LayoutBuilder(path: tmp.path + "/layout")
    }

    func simpleImage() throws -> Descriptor {
        var tar = TarBuilder()
        tar.file("hello", "world")
        let layer = try builder.layer(tar.bytes(), compression: .gzip)
        return try builder.image(layers: [layer])
    }

    @Test func readsManifestAndConfig() throws {
        let image = try simpleImage()
        builder.tag(image, "latest")
        try builder.write()
        let layout = try OCILayout(path: builder.path)
        #expect(layout.index.manifests.first?.refName == "latest")
        let manifest = try layout.manifest(image)
        #expect(manifest.layers.count == 1)
        #expect(manifest.layers[0].mediaType == .ociLayerGzip)
        let config = try layout.config(manifest.config)
        #expect(config.platform == Platform(os: "linux", architecture: "amd64"))
        #expect(config.rootfs.diffIDs.count == 1)
    }

    @Test func missingLayoutMarker() throws {
        try FileManager.default.createDirectory(atPath: tmp.path + "/empty", withIntermediateDirectories: true)
        let error = #expect(throws: UnpackError.self) { try OCILayout(path: tmp.path + "/empty") }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("oci-layout") == true)
    }

    @Test func missingDirectory() throws {
        let error = #expect(throws: UnpackError.self) { try OCILayout(path: tmp.path + "/nope") }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains(tmp.path + "/nope") == true)
    }

    @Test func invalidIndexJSON() throws {
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: builder.path + "/index.json"))
        let error = #expect(throws: UnpackError.self) { try OCILayout(path: builder.path) }
        #expect(error?.code == .invalidImage)
        #expect(error?.message.contains("index.json") == true)
    }

    @Test func wrongLayoutVersion() throws {
        try Data(#"{"imageLayoutVersion":"2.0.0"}"#.utf8).write(to: URL(fileURLWithPath: builder.path + "/oci-layout"))
        builder.tag(try simpleImage(), "latest")
        try builder.write()
        let error = #expect(throws: UnpackError.self) { try OCILayout(path: builder.path) }
        #expect(error?.code == .invalidImage)
        #expect(error?.message.contains("2.0.0") == true)
    }

    @Test func corruptBlobNamesDigest() throws {
        let image = try simpleImage()
        builder.tag(image, "latest")
        try builder.write()
        let original = try Data(
            contentsOf: URL(fileURLWithPath: builder.path + "/blobs/sha256/" + image.digest.encoded))
        var tampered = Array(original)
        tampered[tampered.count / 2] ^= 0x01
        try builder.overwriteBlob(image.digest, with: tampered)
        let layout = try OCILayout(path: builder.path)
        let error = #expect(throws: UnpackError.self) { try layout.manifest(image) }
        #expect(error?.code == .digestMismatch)
        #expect(error?.context.digest == image.digest)
        #expect(error?.message.contains(image.digest.description) == true)
    }

    @Test func sizeMismatchIsCheckedBeforeReading() throws {
        var image = try simpleImage()
        image.size += 1
        builder.tag(image, "latest")
        try builder.write()
        let layout = try OCILayout(path: builder.path)
        let error = #expect(throws: UnpackError.self) { try layout.manifest(image) }
        #expect(error?.code == .sizeMismatch)
        #expect(error?.message.contains("is shorter than its descriptor's size \(image.size)") == true)
    }

    @Test func missingBlob() throws {
        let image = try simpleImage()
        try builder.removeBlob(image.digest)
        builder.tag(image, "latest")
        try builder.write()
        let layout = try OCILayout(path: builder.path)
        let error = #expect(throws: UnpackError.self) { try layout.manifest(image) }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("\(image.digest) is missing") == true)
    }

    @Test func indexPosingAsManifestIsRefused() throws {
        // CVE-2021-41190: a document with `manifests` referenced through a manifest media type.
        let inner = try simpleImage()
        let index = try builder.json(Index(mediaType: nil, manifests: [inner]), mediaType: .ociIndex)
        var posing = index
        posing.mediaType = .ociManifest
        let layout = try {
            builder.tag(posing, "x"); try builder.write(); return try OCILayout(path: builder.path)
        }()
        let error = #expect(throws: UnpackError.self) { try layout.manifest(posing) }
        #expect(error?.code == .invalidImage)
        #expect(error?.message.contains("index posing as a manifest") == true)
    }

    @Test func embeddedMediaTypeMustAgree() throws {
        let inner = try simpleImage()
        let index = try builder.json(Index(mediaType: .ociIndex, manifests: [inner]), mediaType: .ociIndex)
        var lying = index
        lying.mediaType = .dockerManifestList
        builder.tag(lying, "x")
        try builder.write()
        let layout = try OCILayout(path: builder.path)
        let error = #expect(throws: UnpackError.self) { try layout.index(lying) }
        #expect(error?.code == .invalidImage)
        #expect(error?.message.contains("declares media type \(MediaType.ociIndex)") == true)
    }

    @Test func negativeSizeIsInvalid() throws {
        let json =
            #"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:\#(String(repeating: "a", count: 64))","size":-1}]}"#
        try Data(json.utf8).write(to: URL(fileURLWithPath: builder.path + "/index.json"))
        let error = #expect(throws: UnpackError.self) { try OCILayout(path: builder.path) }
        #expect(error?.code == .invalidImage)
        #expect(error?.message.contains("negative size") == true)
    }

    @Test func traversalDigestInIndexIsRejectedBeforeUse() throws {
        let json =
            #"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../../../../../etc/passwd","size":1}]}"#
        try Data(json.utf8).write(to: URL(fileURLWithPath: builder.path + "/index.json"))
        let error = #expect(throws: UnpackError.self) { try OCILayout(path: builder.path) }
        #expect(error?.code == .invalidImage)
        #expect(error?.message.contains("invalid digest") == true)
    }

    @Test func artifactConfigIsNotAnImage() throws {
        let config = try builder.blob(Array("{}".utf8), mediaType: "application/vnd.example.sbom.config+json")
        let manifest = try builder.json(
            Manifest(config: config, layers: []), mediaType: .ociManifest)
        builder.tag(manifest, "sbom")
        try builder.write()
        let layout = try OCILayout(path: builder.path)
        let error = #expect(throws: UnpackError.self) { try layout.manifest(manifest) }
        #expect(error?.code == .unsupportedMediaType)
        #expect(error?.message.contains("application/vnd.example.sbom.config+json") == true)
    }
}

/// Image documents are built from the strict reader's values: the models equal what Codable
/// wrote, and a misfit names its field.
@Suite struct DocumentModelTests {
    @Test func modelsReadBackWhatCodableWrote() throws {
        var execution = ImageConfig.Execution(
            user: "app:staff", exposedPorts: ["80/tcp": EmptyObject()], env: ["A=1"], entrypoint: ["/bin/sh"],
            cmd: ["-c", "true"], volumes: ["/data": EmptyObject()], workingDir: "/w", labels: ["k": "v"],
            stopSignal: "SIGTERM")
        execution.user = "app:staff"
        var config = ImageConfig(
            platform: Platform(os: "linux", architecture: "arm", variant: "v7", osFeatures: ["f"]), config: execution,
            diffIDs: [Digest.of([1]), Digest.of([2])], created: "2026-01-01T00:00:00Z")
        config.author = "someone"
        config.history = [.init(created: "x", createdBy: "y", comment: nil, emptyLayer: true)]
        let encoder = JSONEncoder()
        let configBytes = Array(try encoder.encode(config))
        #expect(try ImageDocuments.config(from: configBytes, where: "c") == config)

        let layer = Descriptor(
            mediaType: .ociLayerZstd, digest: Digest.of([3]), size: 3, annotations: ["a": "b"], urls: ["u"])
        let manifest = Manifest(
            config: Descriptor(mediaType: .ociConfig, digest: Digest.of(configBytes), size: Int64(configBytes.count)),
            layers: [layer], annotations: ["m": "n"])
        let read = try ImageDocuments.manifest(
            from: Array(try encoder.encode(manifest)), expected: .ociManifest, where: "m")
        #expect(read == manifest)
        let index = Index(
            manifests: [
                Descriptor(
                    mediaType: .ociManifest, digest: Digest.of([4]), size: 4,
                    platform: Platform(os: "linux", architecture: "amd64", osVersion: "10"))
            ])
        #expect(
            try ImageDocuments.index(from: Array(try encoder.encode(index)), expected: .ociIndex, where: "i") == index)
    }

    @Test(arguments: [
        (
            #"{"architecture":"amd64","os":"linux","config":{"Env":"A=1"},"rootfs":{"type":"layers","diff_ids":[]}}"#,
            "wrong type at .config.Env"
        ),
        (
            #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:00"]}}"#,
            "at .rootfs.diff_ids[0]"
        ),
        (#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#, "missing field \"diff_ids\" at .rootfs"),
        (#"{"architecture":"amd64","os":null,"rootfs":{"type":"layers","diff_ids":[]}}"#, "missing field \"os\""),
    ])
    func misfitsNameTheirField(text: String, message: String) {
        let error = #expect(throws: UnpackError.self) { try ImageDocuments.config(from: Array(text.utf8), where: "c") }
        #expect(error?.code == .invalidImage)
        #expect(error?.message.contains(message) == true, "\(String(describing: error?.message))")
    }

    @Test func optionalNullsAreAbsent() throws {
        let text =
            #"{"architecture":"amd64","os":"linux","variant":null,"config":null,"rootfs":{"type":"layers","diff_ids":[]}}"#
        let config = try ImageDocuments.config(from: Array(text.utf8), where: "c")
        #expect(config.variant == nil && config.config == nil)
    }
}

/// Keys Go's decoder would match to a field in another spelling (it ignores case) are refused.
@Suite struct CaseFoldedKeyTests {
    @Test(arguments: [
        (
            #"{"architecture":"amd64","os":"linux","config":{"User":"root","user":"app"},"rootfs":{"type":"layers","diff_ids":[]}}"#,
            "key \"user\" at .config is field \"User\""
        ),
        (
            #"{"architecture":"amd64","OS":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
            "key \"OS\" is field \"os\""
        ),
        (
            "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfſ\":{},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
            "is field \"rootfs\""
        ),
    ])
    func configKeysInAnotherSpellingAreRefused(text: String, message: String) {
        let error = #expect(throws: UnpackError.self) { try ImageDocuments.config(from: Array(text.utf8), where: "c") }
        #expect(error?.code == .invalidImage)
        #expect(error?.message.contains(message) == true, "\(String(describing: error?.message))")
    }

    /// The fast exact-name answer and the folded search agree on every known field.
    @Test func everyKnownFieldIsRecognisedInAnySpelling() {
        for field in DocumentFields.knownFields {
            #expect(DocumentFields.knownField(matching: field) == field)
            #expect(DocumentFields.knownField(matching: field.uppercased()) == field, "\(field)")
        }
        #expect(DocumentFields.knownField(matching: "org.example.label") == nil)
    }

    /// `Layers` beside `layers`: Go unpacks the second list; and `Manifests` in a manifest would
    /// make it an index to Go (CVE-2021-41190).
    @Test func manifestKeysInAnotherSpellingAreRefused() {
        let digest = Digest.of([1])
        let layer = #"{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"\#(digest)","size":1}"#
        let config = #"{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(digest)","size":1}"#
        for extra in [#""Layers":[]"#, #""Manifests":[]"#] {
            let text =
                #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":\#(config),"layers":[\#(layer)],\#(extra)}"#
            let error = #expect(throws: UnpackError.self) {
                try ImageDocuments.manifest(from: Array(text.utf8), expected: .ociManifest, where: "m")
            }
            #expect(error?.message.contains("to Go's decoder") == true, "\(String(describing: error?.message))")
        }
    }
}
