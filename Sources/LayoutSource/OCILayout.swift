import FoundationEssentials
import Glibc
import OCIImage
import TarArchive
import UnpackSystem

/// An OCI image layout directory: `oci-layout`, `index.json` and `blobs/ALG/HEX`.
///
/// Every blob read checks the descriptor's size before reading and the digest after, and every
/// document's `mediaType` must agree with the descriptor that led to it.
package struct OCILayout: ImageSource {
    package let path: String
    package var name: String { path }
    /// The layout's directory (O_PATH). Everything the layout names is opened beneath it, one
    /// component at a time without following symlinks: a layout cannot make oci-unpack read a
    /// file outside it (`blobs/sha256/HEX -> /etc/shadow`, or `blobs/sha256 -> /etc`).
    let directory: OwnedFD
    /// The parsed `index.json`.
    package let index: Index
    package let limits: DocumentLimits

    /// Opens the layout at `path`, checking `oci-layout` and parsing `index.json`.
    package init(path: String, limits: DocumentLimits = .init()) throws(UnpackError) {
        self.path = path
        self.limits = limits
        let st: stat
        switch fileStatus(path) {
        case .success(let found): st = found
        case .failure(let error):
            throw error.unpackError("image layout \(path) cannot be opened", context: .init(path: path))
        }
        guard st.isDirectory else {
            throw UnpackError(.notFound, "\(path) is not an OCI image layout directory", context: .init(path: path))
        }
        do throws(SystemError) {
            directory = try OwnedFD(
                retryingSyscall("open", path: path) { open(path, O_PATH_VALUE | O_DIRECTORY | O_CLOEXEC) })
        } catch {
            throw error.unpackError("image layout \(path) cannot be opened", context: .init(path: path))
        }
        let markerPath = path + "/oci-layout"
        let marker = try Self.readSmallFile(
            in: directory, ["oci-layout"], display: markerPath, limit: 64 << 10, what: "oci-layout file")
        try ImageDocuments.checkLayoutMarker(marker, place: markerPath)
        let indexPath = path + "/index.json"
        let indexBytes = try Self.readSmallFile(
            in: directory, ["index.json"], display: indexPath, limit: limits.maxManifestBytes, what: "index.json")
        do throws(UnpackError) {
            index = try ImageDocuments.index(from: indexBytes, expected: .ociIndex, where: indexPath)
        } catch {
            throw error.adding(path: indexPath)
        }
    }

    /// The file that holds a blob (safe: a `Digest` is validated hex), for messages.
    package func blobPath(_ digest: Digest) -> String {
        "\(path)/blobs/\(digest.algorithm.rawValue)/\(digest.encoded)"
    }

    private static func blobComponents(_ digest: Digest) -> [String] {
        ["blobs", digest.algorithm.rawValue, digest.encoded]
    }

    /// Whether something exists where the blob should be (it may still be corrupt, a symlink or
    /// not a regular file: opening it says which).
    package func hasBlob(_ digest: Digest) -> Bool {
        if case .failure(.missing) = directory.openBeneath(Self.blobComponents(digest)) { return false }
        return true
    }

    /// The blob's bytes, its length already checked against the descriptor's size (the pipeline
    /// checks size and digest again while reading).
    package func openBlob(_ descriptor: Descriptor) throws(UnpackError) -> any ByteStream {
        FileStream(try openBlobFile(descriptor))
    }

    /// Opens a blob and checks that its length is the descriptor's size.
    ///
    /// Messages never state the length or hash of bytes that did not verify: a layout could
    /// otherwise make oci-unpack an oracle on files it can reach.
    func openBlobFile(_ descriptor: Descriptor) throws(UnpackError) -> OwnedFD {
        let context = UnpackError.Context(digest: descriptor.digest, mediaType: descriptor.mediaType)
        let fd: OwnedFD
        switch directory.openBeneath(Self.blobComponents(descriptor.digest)) {
        case .success(let opened): fd = opened
        case .failure(.missing(let error)):
            throw UnpackError(
                .notFound, "blob \(descriptor.digest) is missing from \(path)", context: context, underlying: error)
        case .failure(.symlink(let walked)):
            throw UnpackError(
                .invalidImage,
                "blob \(descriptor.digest) is reached through a symlink (\(path)/\(walked)): a layout's blobs must be its own files",
                context: context)
        case .failure(.notRegular):
            throw UnpackError(.invalidImage, "blob \(descriptor.digest) is not a regular file", context: context)
        case .failure(.failed(let error)):
            throw error.unpackError("blob \(descriptor.digest) cannot be read", context: context)
        }
        let st = try SystemError.mapping({ () throws(SystemError) in try fd.status() }) {
            $0.unpackError("blob \(descriptor.digest) cannot be read", context: context)
        }
        guard Int64(st.st_size) == descriptor.size else {
            throw UnpackError(
                .sizeMismatch,
                "blob \(descriptor.digest) is \(Int64(st.st_size) < descriptor.size ? "shorter" : "longer") than its descriptor's size \(descriptor.size)",
                context: context)
        }
        return fd
    }

    /// Reads a whole (small) blob, verifying size and digest.
    package func readBlob(_ descriptor: Descriptor, limit: Int) throws(UnpackError) -> [UInt8] {
        let context = UnpackError.Context(digest: descriptor.digest, mediaType: descriptor.mediaType)
        try descriptor.checkDocumentSize(limit: limit)
        let fd = try openBlobFile(descriptor)
        let read = try SystemError.mapping({ () throws(SystemError) in try fd.readAll(limit: Int(descriptor.size)) }) {
            $0.unpackError("blob \(descriptor.digest) cannot be read", context: context)
        }
        guard let bytes = read else {
            throw UnpackError(.sizeMismatch, "blob \(descriptor.digest) grew while being read", context: context)
        }
        guard Int64(bytes.count) == descriptor.size else {
            throw UnpackError(
                .sizeMismatch, "blob \(descriptor.digest) shrank while being read (descriptor size \(descriptor.size))",
                context: context)
        }
        return bytes
    }

    /// Reads a blob named only by its digest (a digest reference not listed in any index) and
    /// works out what it is from its content.
    package func sniffDescriptor(for digest: Digest) throws(UnpackError) -> Descriptor {
        guard hasBlob(digest) else {
            throw UnpackError(
                .notFound, "no manifest or index with digest \(digest) in \(path)", context: .init(digest: digest))
        }
        // The length is taken from the file, and the content is then checked against the digest:
        // what does not verify is reported without its length or hash.
        let size: Int64
        switch directory.openBeneath(Self.blobComponents(digest)) {
        case .success(let fd):
            let st = try SystemError.mapping({ () throws(SystemError) in try fd.status() }) {
                $0.unpackError("blob \(digest) cannot be read", context: .init(digest: digest))
            }
            size = Int64(st.st_size)
        case .failure:
            // openBlob names the problem (a symlink, not a regular file).
            _ = try openBlobFile(Descriptor(mediaType: .ociManifest, digest: digest, size: 0))
            throw UnpackError(.internal, "blob \(digest) could not be opened", context: .init(digest: digest))
        }
        let probeDescriptor = Descriptor(mediaType: .ociManifest, digest: digest, size: size)
        let bytes = try checkedBlob(probeDescriptor, limit: limits.maxManifestBytes)
        return try ImageDocuments.sniffDescriptor(bytes, digest: digest)
    }

    static func readSmallFile(
        in directory: OwnedFD, _ components: [String], display path: String, limit: Int, what: String
    ) throws(UnpackError) -> [UInt8] {
        let context = UnpackError.Context(path: path)
        let fd: OwnedFD
        switch directory.openBeneath(components) {
        case .success(let opened): fd = opened
        case .failure(.missing(let error)):
            throw UnpackError(
                .notFound, "\(path) is missing: not an OCI image layout (no \(what))", context: context,
                underlying: error)
        case .failure(.symlink):
            throw UnpackError(
                .invalidImage, "\(path) is a symlink: a layout's files must be its own", context: context)
        case .failure(.notRegular):
            throw UnpackError(.invalidImage, "\(path) is not a regular file", context: context)
        case .failure(.failed(let error)):
            throw error.unpackError("\(path) cannot be read", context: context)
        }
        let read = try SystemError.mapping({ () throws(SystemError) in try fd.readAll(limit: limit) }) {
            $0.unpackError("\(path) cannot be read", context: context)
        }
        guard let bytes = read else {
            throw UnpackError(.limitExceeded, "\(path) is larger than \(limit) bytes", context: context)
        }
        return bytes
    }
}
