import Glibc
import LayerApply
import LayerEngine
import LayerStream
import LayoutSource
import Logging
import OCIImage
import Resolution
import RuntimeBundle
import UnpackSystem

extension Unpacker {
    /// Layers whose streams are opened while an earlier one is applied (see `unpack`).
    static let layersAhead = 3

    /// Resolves `reference`, applies its layers in order onto `bundle/rootfs`, and publishes the
    /// bundle only when every layer verified and applied; on any error nothing is left behind.
    public func unpack(
        _ reference: String, into bundle: String, request: ResolutionRequest, options: UnpackOptions = .init()
    ) throws(UnpackError) -> UnpackResult {
        // A target that can never be published is refused before any work, and so is an
        // ownership this process cannot give.
        try BundleStaging.checkTarget(bundle, force: options.force)
        try Self.checkPrivileges(for: options.ownership)
        return try unpack(try resolve(reference, request: request), into: bundle, options: options)
    }

    /// Applies the layers of an image already resolved, from the source it was resolved in
    /// (``ResolvedImage/source``: a layout, an archive, a registry, or any ``ImageSource`` of the
    /// caller's, through ``resolve(_:in:request:)``), onto `bundle/rootfs`, and publishes the
    /// bundle only when every layer verified and applied; on any error nothing is left behind.
    /// What the source returns is verified above it: documents against their descriptors when
    /// resolved, each layer's blob digest, size and diff_id while it streams.
    public func unpack(_ image: ResolvedImage, into bundle: String, options: UnpackOptions = .init())
        throws(UnpackError) -> UnpackResult
    {
        try BundleStaging.checkTarget(bundle, force: options.force)
        try Self.checkPrivileges(for: options.ownership)
        // Every layer's media type is checked before any work starts.
        for layer in image.layers where layer.descriptor.mediaType.layerCompression == nil {
            throw UnpackError(
                .unsupportedMediaType,
                "layer \(layer.index) (\(layer.descriptor.digest)) has media type \(layer.descriptor.mediaType), which cannot be unpacked",
                context: .init(
                    digest: layer.descriptor.digest, mediaType: layer.descriptor.mediaType, layerIndex: layer.index))
        }
        // What can be refused without unpacking is refused first.
        try RuntimeConfig.precheck(image: image.config, overrides: options.overrides)
        if RuntimeConfig.arguments(image: image.config, overrides: options.overrides).isEmpty {
            options.apply.warn(
                "the image has neither Entrypoint nor Cmd: config.json's process.args is empty; give a command after \"--\" to make it runnable"
            )
        }
        let template: JSONValue
        if let given = options.template {
            template = given
        } else if options.ownership.isUnprivileged {
            template = try RuntimeConfig.rootlessTemplate()
        } else {
            template = try RuntimeConfig.defaultTemplate()
        }
        var namespaceRootGroup: gid_t?
        if case .mapped(let uids, let gids, _) = options.ownership {
            namespaceRootGroup = gids.hostID(for: 0)
            let root = (uid: uids.hostID(for: 0) ?? 65534, gid: gids.hostID(for: 0) ?? 65534)
            if let (directory, mode) = BundleStaging.firstUnsearchableParent(of: bundle, uid: root.uid, gid: root.gid) {
                options.apply.warn(
                    "a runtime cannot start this bundle: its init runs as host uid \(root.uid) (the container's root), which may not pass through \(directory) (mode \(String(mode, radix: 8))); give that directory search permission for others, or unpack elsewhere"
                )
            }
        }
        let staging = try BundleStaging(
            target: bundle, force: options.force, namespaceRootGroup: namespaceRootGroup, warn: options.apply.warn)
        do throws(UnpackError) {
            let checkpoint: () throws(UnpackError) -> Void
            if let token = options.cancellation {
                checkpoint = { () throws(UnpackError) in try token.check() }
            } else {
                checkpoint = {}
            }
            let applier = try Applier(rootPath: staging.rootfs, options: options.apply, checkpoint: checkpoint)
            let layerCount = image.layers.count
            let logger = self.logger
            let progress = options.progress.map { report in
                { (step: LayerDriver.Progress) in
                    report(
                        UnpackProgress(
                            layerIndex: step.layer.index, layerCount: layerCount, digest: step.layer.descriptor.digest,
                            bytesDone: step.bytesDone, bytesTotal: step.layer.descriptor.size,
                            layerFinished: step.finished))
                }
            }
            let driver = LayerDriver(
                source: image.source, layers: image.layers,
                settings: LayerDriver.Settings(
                    limits: options.limits, gzip: options.gzipDecoder.implementation, prefetch: options.prefetch,
                    readAhead: Self.layersAhead, warn: { logger.warning("\($0)") }, checkpoint: checkpoint,
                    progress: progress))
            let entries = try driver.run(into: applier)
            try options.cancellation?.check()
            try writeConfig(image: image, template: template, root: applier.root, staging: staging, options: options)
            // The last moment a cancellation can still leave the target as it was.
            try options.cancellation?.check()
            try staging.publish()
            logger.info(
                "unpacked image",
                metadata: [
                    "bundle": "\(bundle)", "manifest": "\(image.manifestDescriptor.digest)",
                    "layers": "\(image.layers.count)",
                ])
            return UnpackResult(image: image, bundle: staging.target, entries: entries)
        } catch {
            staging.discard()
            throw error
        }
    }

    /// `config.json`, with users looked up in the new rootfs through the in-root resolver.
    private func writeConfig(
        image: ResolvedImage, template: JSONValue, root: RootDirectory, staging: BundleStaging, options: UnpackOptions
    ) throws(UnpackError) {
        let users = UserDatabase(
            passwd: try root.readFile(
                EntryPath(cleaning: Array("etc/passwd".utf8)), limit: options.limits.maxUserDatabaseBytes),
            group: try root.readFile(
                EntryPath(cleaning: Array("etc/group".utf8)), limit: options.limits.maxUserDatabaseBytes))
        var config = try RuntimeConfig.make(
            template: template, image: image.config, users: users, overrides: options.overrides,
            userNamespace: options.ownership.namespaceMaps)
        if options.ownership.isUnprivileged, let maps = options.ownership.namespaceMaps,
            var process = config["process"], var user = process["user"],
            case .int(let uid)? = user["uid"], case .int(let gid)? = user["gid"],
            maps.uids.hostID(for: UInt32(truncatingIfNeeded: uid)) == nil
                || maps.gids.hostID(for: UInt32(truncatingIfNeeded: gid)) == nil
        {
            // A runtime cannot switch to an id its user namespace does not map ("cannot set uid
            // to unmapped user"): a rootless bundle that maps only the user's own id runs the
            // process as the container's root, the one id it has, rather than not at all.
            let named =
                options.overrides.user.map { "--user \($0)" } ?? "the image's User \(image.config.config?.user ?? "")"
            user["uid"] = .int(0)
            user["gid"] = .int(0)
            user["additionalGids"] = nil
            process["user"] = user
            config["process"] = process
            let hint =
                UserNamespace.userHasSubordinateIDs()
                ? "--userns auto maps your subordinate ids and keeps the image's users"
                : "with subordinate ids in /etc/subuid and /etc/subgid, --userns auto would keep the image's users"
            options.apply.warn(
                "\(DisplayText.escaping(named)) (uid \(uid), gid \(gid)) is not mapped in the bundle's user namespace (uids \(maps.uids), gids \(maps.gids)): the process runs as root (0:0) inside the container instead; \(hint)"
            )
        }
        if options.ownership.isUnprivileged, var process = config["process"], var user = process["user"],
            let groups = user["additionalGids"]?.arrayValue, !groups.isEmpty
        {
            // runc refuses supplementary groups when it runs without privileges (it cannot call
            // setgroups there): a bundle that lists them would not start.
            user["additionalGids"] = nil
            process["user"] = user
            config["process"] = process
            options.apply.warn(
                "the container's user belongs to supplementary groups \(groups.compactMap { if case .int(let gid) = $0 { String(gid) } else { nil } }.joined(separator: ", ")), which a runtime run without privileges cannot set: left out of config.json"
            )
        }
        try staging.write("config.json", RuntimeConfig.encode(config))
    }

    /// The image's own owners need root (in some user namespace); shifted owners need root in
    /// the initial one, which alone can give any host id.
    static func checkPrivileges(for ownership: Ownership) throws(UnpackError) {
        switch ownership {
        case .rootless:
            return
        case .preserve, .namespaced:
            guard geteuid() == 0 else {
                throw UnpackError(
                    .permissionDenied,
                    "restoring the image's owners needs root; unpack rootless instead (the default for other users)")
            }
        case .mapped:
            guard IDMapping.fullyPrivileged else {
                throw UnpackError(
                    .permissionDenied,
                    "an id-mapped unpack (--uid-map, --gid-map) needs root in the initial user namespace, which alone can give files any host id"
                )
            }
        }
    }
}
