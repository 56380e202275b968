import ArchiveSource
import Glibc
import LayoutSource
import OCIImage
import UnpackSystem

/// What a layout reference that opened nothing was probably meant to be: the hints a user of
/// podman or skopeo needs when a registry reference or an archive is given as a layout path.
enum ReferenceHints {
    /// Opens the layout `reference` names; when that fails, the error says what the text reads as:
    /// a registry reference where no such path exists (`alpine`, `docker.io/library/alpine`,
    /// `127.0.0.1:5077/ex/app:v1`), an archive where the path is a tar file.
    static func openLayout(_ reference: ImageReference, limits: DocumentLimits) throws(UnpackError) -> OCILayout {
        let failure: UnpackError
        do {
            return try OCILayout(path: reference.layoutPath, limits: limits)
        } catch {
            failure = error
        }
        guard let hint = hint(for: reference) else { throw failure }
        var hinted = failure
        hinted.message += "; \(hint)"
        throw hinted
    }

    /// The hint for a layout reference that did not open, if the text reads as something else.
    static func hint(for reference: ImageReference) -> String? {
        let path = reference.layoutPath
        switch fileStatus(path) {
        case .failure(let error) where error.errno == ENOENT || error.errno == ENOTDIR:
            // What the user typed: the reference without the `oci:` its description starts with.
            let text = String(reference.description.dropFirst(reference.description.hasPrefix("oci:") ? 4 : 0))
            guard let registry = try? ImageReference(parsing: "docker://" + text, isDirectory: { _ in false }),
                plausibleRegistryText(text)
            else { return nil }
            return
                "no such path exists, and \"\(DisplayText.escaping(text))\" reads as a registry reference: to pull it, use docker://\(DisplayText.escaping(text)) (\(registry.description.dropFirst("docker://".count)))"
        case .success(let st) where st.isRegularFile:
            // A tar given as a layout: an OCI archive holds oci-layout, a docker save manifest.json.
            guard let archive = try? ArchiveFile(path: path) else { return nil }
            if archive.members["manifest.json"] != nil && archive.members["oci-layout"] == nil {
                return "it is a tar file holding manifest.json: use docker-archive:\(DisplayText.escaping(path))"
            }
            if archive.members["oci-layout"] != nil {
                return "it is a tar file holding an OCI layout: use oci-archive:\(DisplayText.escaping(path))"
            }
            return nil
        default:
            return nil
        }
    }

    /// Whether `text` looks like what podman is given (`NAME[:TAG]`, `HOST[:PORT]/NAME…`), not a
    /// path: no leading `/` or `.`, no `//`, and a lowercase repository.
    private static func plausibleRegistryText(_ text: String) -> Bool {
        guard let first = text.first, first != "/", first != ".", first != "~", !text.contains("//") else {
            return false
        }
        return true
    }
}
