import OCIImage
import Synchronization
import UnpackSystem

/// The places one reference is pulled from, in order (registries.conf's mirrors, then the primary
/// location, which containerd's hosts.toml may give mirrors of its own): each reached through a
/// client of its own, made when first needed. A request goes to the first place that may answer
/// it (a tag only to a place trusted to resolve tags) and does; a place that cannot be reached or
/// lacks what is asked for (a connection failure, a 404, a server error after the retries)
/// passes it to the next, with a warning. What a place does send is checked as the registry's
/// would be: a mirror that sends wrong bytes fails the pull, and is never read around.
final class RegistryEndpoints: Sendable {
    let endpoints: [RegistriesConf.Endpoint]
    private let options: RegistryOptions
    private let clients: Mutex<[Int: Result<RegistryClient, UnpackError>]> = Mutex([:])
    private let onWarning: @Sendable (String) -> Void
    /// The endpoint that served each blob.
    private let served: Mutex<[Digest: Int]> = Mutex([:])

    /// The endpoints registries.conf (`options.registriesConf`) gives `host/repository`, for a
    /// reference by digest or by tag (`selector` is `:tag` or `@digest`, for prefix matching).
    init(
        host: String, repository: String, selector: String, byDigest: Bool, options: RegistryOptions,
        onWarning: @escaping @Sendable (String) -> Void
    ) throws(UnpackError) {
        let conf = options.registriesConf ?? RegistriesConf()
        var endpoints = try conf.endpoints(
            host: host, repository: repository, selector: selector, byDigest: byDigest)
        if let root = options.hostsDirectory, let primary = endpoints.last,
            let hosts = try ContainerdHosts(root: root).endpoints(
                host: primary.host, repository: primary.repository, insecure: primary.insecure)
        {
            endpoints.removeLast()
            endpoints += hosts
        }
        self.endpoints = endpoints
        self.options = options
        self.onWarning = onWarning
    }

    /// The client of endpoint `i`, made (and its `/v2/` probed) on first use.
    func client(_ i: Int) throws(UnpackError) -> RegistryClient {
        if let made = clients.withLock({ $0[i] }) { return try made.get() }
        let made: Result<RegistryClient, UnpackError>
        do throws(UnpackError) {
            made = .success(try RegistryClient(endpoint: endpoints[i], options: options))
        } catch {
            made = .failure(error)
        }
        clients.withLock { $0[i] = made }
        return try made.get()
    }

    /// What a request asks for, which decides the endpoints that may answer it.
    enum Asked {
        /// A manifest by tag: only endpoints trusted to resolve tags (hosts.toml's `resolve`).
        case tag
        /// Content by digest (a manifest, a blob), checked against it: any endpoint that pulls.
        case digest
    }

    /// `request` answered by the first endpoint that may and can.
    func first<T>(_ what: String, asking: Asked = .digest, _ request: (RegistryClient) throws(UnpackError) -> T)
        throws(UnpackError) -> (value: T, endpoint: Int)
    {
        let all = endpoints.indices.filter { asking == .tag ? endpoints[$0].resolves : endpoints[$0].pulls }
        guard !all.isEmpty else {
            let places = Set(endpoints.compactMap(\.configuredIn)).sorted().joined(separator: ", ")
            throw UnpackError(
                .notFound,
                "no configured host may be asked for \(what) (capability \(asking == .tag ? "resolve" : "pull") is in none of \(places))"
            )
        }
        // An endpoint that could not be reached once (its client failed to connect) is not
        // asked again in this run, nor warned about again; the last one always is.
        let unreachable = clients.withLock { made in
            Set(made.compactMap { i, result in if case .failure = result { i } else { nil } })
        }
        var order = all.filter { !unreachable.contains($0) }
        if order.isEmpty, let last = all.last { order = [last] }
        var failures: [String] = []
        for (n, i) in order.enumerated() {
            do throws(UnpackError) {
                return (try request(try client(i)), i)
            } catch {
                // Only what another place could answer passes on: not a wrong digest or size,
                // nor an interruption.
                guard n < order.count - 1, Self.passesOn(error) else {
                    guard !failures.isEmpty else { throw error }
                    var last = error
                    last.message += " (after \(failures.joined(separator: "; ")))"
                    throw last
                }
                let next = endpoints[order[n + 1]]
                onWarning(
                    "\(endpoints[i].isMirror ? "mirror" : "registry") \(endpoints[i]) could not serve \(what) (\(error.message)); trying \(next.isMirror ? "mirror" : "registry") \(next)"
                )
                failures.append("\(endpoints[i]): \(error.message)")
            }
        }
        throw UnpackError(.internal, "no endpoint to ask for \(what)")
    }

    /// Says where `endpoint` is, for `--json` and the log: `mirror HOST/REPO` or `registry HOST/REPO`.
    func describe(_ endpoint: Int) -> String {
        "\(endpoints[endpoint].isMirror ? "mirror" : "registry") \(endpoints[endpoint])"
    }

    /// Notes that `endpoint` served the blob `digest`.
    func record(_ digest: Digest, servedBy endpoint: Int) {
        served.withLock { $0[digest] = endpoint }
    }

    /// Where the blob `digest` came from (``describe(_:)``), if it was fetched.
    func origin(of digest: Digest) -> String? {
        served.withLock { $0[digest] }.map(describe)
    }

    /// Whether another place could answer what this failure did not: it could not be reached or
    /// failed (74), lacks it (66), or refused it (77: a registry answers 401 or 403 for a
    /// repository it does not have, and a mirror may want credentials the origin does not). Never
    /// wrong bytes, a wrong size, a limit, or an interruption.
    static func passesOn(_ error: UnpackError) -> Bool {
        error.code == .io || error.code == .notFound || error.code == .permissionDenied
    }
}
