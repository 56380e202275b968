import Glibc
import LayerApply
import LayerEngine
import OCIImage
import Resolution
import RuntimeBundle
import UnpackSystem

/// Where an unpack puts an image: the consumer the layer driver feeds, and what is made of the
/// layers after the last one verified. A runtime bundle with a private root filesystem is one
/// output (`BundleOutput`); another (a store's per-layer directories, mounted as a bundle's
/// rootfs) plugs in here without touching the driver or the layer rules.
package protocol UnpackOutput {
    associatedtype Consumer: LayerConsumer
    /// What the layers are applied to.
    var consumer: Consumer { get }
    /// After every layer committed: completes the output (config.json, mounts) and makes it
    /// visible at its target, whose path it returns. `checkpoint` is called up to the last moment
    /// a cancellation can still leave the target as it was.
    func publish(_ image: ResolvedImage, checkpoint: () throws(UnpackError) -> Void) throws(UnpackError) -> String
    /// On failure: removes everything the output made; the target is as it was.
    func discard()
}

/// An OCI runtime bundle: the layers applied onto `rootfs/` of a staging directory beside the
/// target, `config.json` converted from the image configuration (users looked up in the new
/// rootfs), and the staging directory renamed into place.
package struct BundleOutput: UnpackOutput {
    let staging: BundleStaging
    let applier: Applier
    let template: JSONValue
    let options: UnpackOptions

    package var consumer: Applier { applier }

    /// Chooses the config template and creates the staging directory beside `bundle`.
    package init(bundle: String, options: UnpackOptions, checkpoint: @escaping () throws(UnpackError) -> Void)
        throws(UnpackError)
    {
        let (staging, template) = try Self.stage(bundle, options: options)
        do throws(UnpackError) {
            applier = try Applier(rootPath: staging.rootfs, options: options.apply, checkpoint: checkpoint)
        } catch {
            staging.discard()
            throw error
        }
        self.staging = staging
        self.template = template
        self.options = options
    }

    /// The config template for `options`, and a staging directory beside `bundle` (the part of a
    /// bundle every output shares).
    static func stage(_ bundle: String, options: UnpackOptions) throws(UnpackError) -> (BundleStaging, JSONValue) {
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
        return (staging, template)
    }

    package func publish(_ image: ResolvedImage, checkpoint: () throws(UnpackError) -> Void) throws(UnpackError)
        -> String
    {
        try Self.writeConfig(image, root: applier.root, template: template, staging: staging, options: options)
        // The last moment a cancellation can still leave the target as it was.
        try checkpoint()
        try staging.publish()
        return staging.target
    }

    package func discard() { staging.discard() }

    /// `config.json`, with users looked up in the new rootfs through the in-root resolver.
    static func writeConfig(
        _ image: ResolvedImage, root: RootDirectory, template: JSONValue, staging: BundleStaging,
        options: UnpackOptions,
        rootSpec: RuntimeConfig.Root = RuntimeConfig.Root(path: "rootfs")
    ) throws(UnpackError) {
        let users = UserDatabase(
            passwd: try root.readFile(
                EntryPath(cleaning: Array("etc/passwd".utf8)), limit: options.limits.maxUserDatabaseBytes),
            group: try root.readFile(
                EntryPath(cleaning: Array("etc/group".utf8)), limit: options.limits.maxUserDatabaseBytes))
        var config = try RuntimeConfig.make(
            template: template, image: image.config, users: users, overrides: options.overrides,
            root: rootSpec, userNamespace: options.ownership.namespaceMaps)
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
}
