import FoundationEssentials
import Glibc
import LayerStore
import OCIImage
import RuntimeBundle
import UnpackSystem

/// The parts of a bundle made from a layer store: its upper and work directories, the overlay
/// that is its root filesystem, and the file that describes that overlay.
enum StoreBundle {
    /// Creates `upper/` and `work/` in the staging directory (the upper with the root directory's
    /// metadata of the top layer, which overlayfs shows for `/`), and returns the overlay to mount
    /// now (staging paths) and the spec to record (the bundle's final paths).
    static func prepare(staging: BundleStaging, bundle: String, lowers: [String], userXattr: Bool)
        throws(UnpackError) -> (OverlayMount, StoreMountSpec)
    {
        let upper = staging.staging + "/upper"
        let work = staging.staging + "/work"
        for directory in [upper, work] where mkdir(directory, 0o755) != 0 {
            throw SystemError(call: "mkdir", errno: errno, path: directory).unpackError(
                "the bundle's overlay directories cannot be created")
        }
        if let top = lowers.first { copyRootMetadata(from: top, to: upper) }
        let overlay = OverlayMount(lowers: lowers, upper: upper, work: work, userXattr: userXattr)
        let final = OverlayMount(lowers: lowers, upper: bundle + "/upper", work: bundle + "/work", userXattr: userXattr)
        let options: [String]
        do throws(SystemError) {
            options = try final.options().split(separator: ",").map(String.init)
            _ = try overlay.options()
        } catch {
            throw error.unpackError("the bundle's overlay cannot be described")
        }
        let spec = StoreMountSpec(
            type: "overlay", source: "overlay", options: options, target: bundle + "/rootfs",
            lowerDirectories: lowers, upperDirectory: bundle + "/upper", workDirectory: bundle + "/work")
        return (overlay, spec)
    }

    /// `to` gets `from`'s mode, owner and times (a layer's root directory carries the root's
    /// metadata as the layers below it left it).
    static func copyRootMetadata(from: String, to: String) {
        var st = stat()
        guard lstat(from, &st) == 0 else { return }
        _ = lchown(to, st.st_uid, st.st_gid)
        _ = chmod(to, st.st_mode & 0o7777)
        _ = withTimes(st.st_atim, st.st_mtim) { utimensat(AT_FDCWD, to, $0, AT_SYMLINK_NOFOLLOW) }
    }

    /// Runs `body` on a thread of its own with `overlay` mounted at `target` in that thread's own
    /// mount namespace (seen by nobody else, gone with the thread).
    static func withPrivateMount(
        _ overlay: OverlayMount, at target: String, _ body: @escaping () throws(UnpackError) -> Void
    ) throws(UnpackError) {
        nonisolated(unsafe) let work = body
        let outcome = ResultBox<Bool>()
        do throws(SystemError) {
            let thread = try startThread(name: "oci-store-read") {
                outcome.set(
                    Result { () throws(UnpackError) -> Bool in
                        do throws(SystemError) {
                            try unshareMountNamespace()
                            try overlay.mount(on: target)
                        } catch {
                            throw error.unpackError("the image's layers cannot be mounted to read its users")
                        }
                        try work()
                        return true
                    })
            }
            thread.join()
        } catch {
            throw error.unpackError("cannot start a thread to read the image's users")
        }
        _ = try outcome.get()
    }

    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return [] }
        return [UInt8](data) + [UInt8(0x0a)]
    }
}
