// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "oci-unpack",
    // Linux only: every module below the model imports Glibc and uses Linux system calls
    // (openat2, O_PATH, user namespaces, overlayfs); no other platform is claimed.
    products: [
        .executable(name: "oci-unpack", targets: ["oci-unpack"]),
        // oci-unpack with registry access; oci-unpack runs it for docker:// references.
        .executable(name: "oci-unpack-registry", targets: ["oci-unpack-registry"]),
        .library(name: "OCIUnpack", targets: ["OCIUnpack"]),
        // RegistryClientAccess, for Unpacker(registries:): docker:// references.
        .library(name: "OCIUnpackRegistries", targets: ["Registries"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        // `swift package generate-documentation` (hack/test builds the library's DocC catalog).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // Registries (docker://): the Swift server ecosystem's HTTP client, on swift-nio and swift-nio-ssl.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // C libraries, each imported by exactly one Swift module.
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        .systemLibrary(name: "CIsal", pkgConfig: "libisal", providers: [.apt(["libisal-dev"])]),
        .systemLibrary(name: "CGPGME", pkgConfig: "gpgme", providers: [.apt(["libgpgme-dev"])]),
        .target(name: "CShims"),

        // The system layer: fds, syscalls that capture errno, threads and locks, signals, tree
        // removal, mounts, id maps. The only importer of CShims.
        .target(name: "UnpackSystem", dependencies: ["CShims"]),
        // The image model: documents, digests, platforms, references, the strict JSON reader, the
        // public error type. No fds, no syscalls (it names SystemError only to map it).
        .target(
            name: "OCIImage",
            dependencies: ["UnpackSystem", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // Sources of images behind the ImageSource protocol: the OCI image layout on disk.
        .target(name: "LayoutSource", dependencies: ["OCIImage", "UnpackSystem", "TarArchive"]),
        // Archives read in place: oci-archive (a tar of a layout) and docker-archive (docker save).
        .target(name: "ArchiveSource", dependencies: ["OCIImage", "UnpackSystem", "TarArchive"]),
        // Registries (distribution-spec v2) over HTTP: manifests, blobs streamed with backpressure,
        // token and basic auth, TLS; the --cache blob store in front of them (an OCI layout of its own).
        .target(
            name: "Registries",
            dependencies: [
                "OCIImage", "UnpackSystem", "TarArchive",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(name: "Resolution", dependencies: ["OCIImage"]),
        // Signature policy as containers-policy.json(5) defines it: the policy and registries.d
        // files, OpenPGP "simple signing" through GPGME (the only importer of CGPGME), sigstore
        // signatures through swift-crypto, and the decision on a manifest digest.
        .target(
            name: "Trust",
            dependencies: ["OCIImage", "UnpackSystem", "CGPGME", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // Tar archives read through libarchive (the only importer of CArchive): the entry model, the
        // reader over any ByteStream, and the stream helpers a source may use without the codecs.
        .target(name: "TarArchive", dependencies: ["OCIImage", "UnpackSystem", "CArchive"]),
        .target(
            name: "LayerStream",
            dependencies: [
                "OCIImage", "UnpackSystem", "TarArchive", "CZstd", "CZlib", "CIsal",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The layer engine: the one layer loop (LayerDriver) feeding a LayerConsumer, and the OCI
        // layer rules (whiteouts, opaque markers, limits) every consumer applies.
        .target(
            name: "LayerEngine", dependencies: ["OCIImage", "Resolution", "LayerStream", "TarArchive", "UnpackSystem"]),
        // Consumers: the applier writes onto a directory (a rootfs, or a layer in overlay form).
        .target(
            name: "LayerApply", dependencies: ["OCIImage", "LayerEngine", "LayerStream", "TarArchive", "UnpackSystem"]),
        // Canonical listings of root filesystems: applied virtually from an image's layers (no file
        // written) or read from a directory, compared and digested; the variant verifier.
        .target(
            name: "TreeCompare",
            dependencies: [
                "OCIImage", "UnpackSystem", "LayerStream", "TarArchive", "LayerEngine", "Resolution",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The layer store (--store): layers unpacked once in overlay form, keyed by chain ID, locked
        // per layer, and the records of the bundles that mount them.
        .target(name: "LayerStore", dependencies: ["OCIImage", "UnpackSystem"]),
        .target(
            name: "RuntimeBundle",
            dependencies: ["OCIImage", "UnpackSystem"],
            // Links to bundle-templates/default.json and rootless.json, compiled into the binary so that an installed
            // oci-unpack needs no data files.
            resources: [.embedInCode("Templates/default.json"), .embedInCode("Templates/rootless.json")]
        ),
        .target(
            name: "OCIUnpack",
            dependencies: [
                "OCIImage", "UnpackSystem", "LayoutSource", "ArchiveSource", "Resolution", "LayerStream",
                "LayerEngine", "LayerApply", "LayerStore", "RuntimeBundle", "TreeCompare", "Trust",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The command line, run by two executables: oci-unpack (local images; it hands docker://
        // references on) and oci-unpack-registry (the same, with Registries). The HTTP stack stays
        // out of oci-unpack: every Swift program start searches all the conformance records its
        // binary holds, and NIO's made a local unpack of a small image start 35 % slower.
        .target(
            name: "OCIUnpackCLI",
            dependencies: [
                "OCIUnpack", "UnpackSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "oci-unpack", dependencies: ["OCIUnpackCLI"]),
        .executableTarget(name: "oci-unpack-registry", dependencies: ["OCIUnpackCLI", "Registries"]),
        .executableTarget(name: "make-example", dependencies: ["UnpackTestSupport"]),
        .target(
            name: "UnpackTestSupport",
            dependencies: [
                "OCIImage", "UnpackSystem", "LayerStream",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),

        .testTarget(
            name: "OCIImageTests", dependencies: ["OCIImage", "LayoutSource", "UnpackSystem", "UnpackTestSupport"]),
        .testTarget(name: "TrustTests", dependencies: ["Trust", "OCIImage", "UnpackSystem", "UnpackTestSupport"]),
        .testTarget(
            name: "ResolutionTests", dependencies: ["Resolution", "OCIImage", "LayoutSource", "UnpackTestSupport"]),
        .testTarget(
            name: "LayerStreamTests", dependencies: ["LayerStream", "TarArchive", "OCIImage", "UnpackSystem", "UnpackTestSupport"]),
        .testTarget(
            name: "LayerEngineTests",
            dependencies: [
                "LayerEngine", "LayerStream", "TarArchive", "LayoutSource", "OCIImage", "Resolution", "UnpackSystem",
                "UnpackTestSupport",
            ]),
        .testTarget(
            name: "RegistriesTests", dependencies: ["Registries", "OCIImage", "UnpackSystem", "UnpackTestSupport"]),
        .testTarget(
            name: "LayerApplyTests",
            dependencies: ["LayerApply", "LayerEngine", "LayerStream", "TarArchive", "OCIImage", "UnpackSystem", "UnpackTestSupport"]),
        .testTarget(name: "RuntimeBundleTests", dependencies: ["RuntimeBundle", "OCIImage", "UnpackTestSupport"]),
        .testTarget(
            name: "OCIUnpackTests",
            dependencies: [
                "OCIUnpack", "OCIImage", "UnpackSystem", "LayoutSource", "Resolution", "LayerStream", "TarArchive", "LayerEngine",
                "LayerStore",
                "LayerApply",
                "RuntimeBundle", "TreeCompare", "UnpackTestSupport", "Registries",
                // The exit statuses (UnpackError.Code.exitCode) the CLI tests expect.
                "OCIUnpackCLI",
                // libcap reads back the file capabilities an id-mapped unpack writes.
                "CCap",
            ]
        ),
    ]
)

// libFuzzer targets, built only by hack/fuzz (OCI_UNPACK_FUZZ=1 swift build -Xswiftc -sanitize=fuzzer):
// without the fuzzer runtime they have no main.
if Context.environment["OCI_UNPACK_FUZZ"] == "1" {
    for name in ["fuzz-reference", "fuzz-documents", "fuzz-tar"] {
        package.products.append(.executable(name: name, targets: [name]))
        package.targets.append(
            .executableTarget(
                name: name, dependencies: ["FuzzTargets"], path: "Sources/FuzzEntry/\(name)"))
    }
}
package.targets.append(
    .target(
        name: "FuzzTargets",
        dependencies: [
            "OCIImage", "UnpackSystem", "Resolution", "LayerStream", "TarArchive", "LayerEngine", "LayerApply",
            "RuntimeBundle", "Trust",
        ]))

// One set of Swift settings for every Swift target (as swift-log does).
for target in package.targets where target.type != .system && target.name != "CShims" {
    var settings = target.swiftSettings ?? []
    settings.append(.swiftLanguageMode(.v6))
    target.swiftSettings = settings
}
