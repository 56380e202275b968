import AsyncHTTPClient
import FoundationEssentials
import Glibc
import NIOCore
import NIOHTTP1
import NIOSSL
import OCIImage
import UnpackSystem

/// One repository of one registry, spoken to over distribution-spec v2: requests carry the
/// current authorization, follow redirects by hand (a redirect to another host loses the
/// `Authorization` header), retry what a server asks to be retried, and answer on the caller's
/// thread (the HTTP client's event loops never block).
package final class RegistryClient: @unchecked Sendable {
    /// The registry as named (`docker.io`, `127.0.0.1:5000`).
    let host: String
    let repository: String
    /// Where its API is (`registry-1.docker.io` for docker.io).
    let apiHost: String
    private let client: HTTPClient
    private let credentials: (user: String, password: String)?
    /// `--tls-verify`: when false, plain HTTP is allowed to any host (``allowsPlainHTTP(to:)``).
    private let tlsVerify: Bool
    private let lock = ConditionLock()
    /// The minimum rate and the overall deadline every transfer meets.
    let bounds: TransferBounds
    private var authorization: String?
    private var authMethod = "anonymous"
    private var scheme = "https"
    /// The scheme hosts.toml names for this host (no negotiation); nil: negotiated by the probe.
    private let configuredScheme: String?
    /// Where the API is under the host (`/v2`, or hosts.toml's `override_path`).
    private let apiPath: String
    /// `?ns=REGISTRY` (percent-encoded, with its `?`) for a host serving several registries, or "".
    private let namespaceQuery: String
    /// hosts.toml's `[header]`: sent to this host's own origin only.
    private let configuredHeaders: [(String, String)]

    /// Attempts of one request when the server asks for a retry (429, 5xx) or the connection fails:
    /// the first and `--retry-times` more.
    let maxAttempts: Int
    /// `--retry-delay`: the fixed pause before a retry, if one was given.
    let retryDelay: Double?
    /// Redirects followed for one request.
    static let maxRedirects = 10

    /// A client of `endpoint` (a registry, or a mirror of one), with what its configuration
    /// (registries.conf's `insecure`, hosts.toml's settings) adds to `options`.
    init(endpoint: RegistriesConf.Endpoint, options given: RegistryOptions) throws(UnpackError) {
        var options = given
        if endpoint.insecure { options.tlsVerify = false }
        host = endpoint.host
        repository = endpoint.repository
        apiHost = host == "docker.io" ? "registry-1.docker.io" : host
        configuredScheme = endpoint.scheme
        apiPath = endpoint.apiPath
        namespaceQuery = endpoint.namespace.map { "?ns=" + Self.percentEncoded($0) } ?? ""
        configuredHeaders = endpoint.headers.map { ($0.name, $0.value) }
        if let configured = endpoint.scheme { scheme = configured }
        var tls = TLSConfiguration.makeClientConfiguration()
        if !options.tlsVerify || endpoint.skipVerify { tls.certificateVerification = .none }
        if let directory = options.certDirectory { try Self.addCertificates(from: directory, to: &tls) }
        try Self.addConfigured(endpoint, to: &tls)
        let connect = endpoint.connectTimeout.map { TimeAmount.milliseconds(Int64(max($0, 0.001) * 1000)) }
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls, redirectConfiguration: .disallow,
            timeout: .init(connect: connect ?? .seconds(30), read: .seconds(60)))
        // HTTP/1.1 only. Over HTTP/2 (which registries offer through ALPN) every blob shares one
        // connection whose flow-control window lets the server send tens of megabytes that NIO
        // buffers while the body's backpressure holds: a TLS pull of the debian image peaked at
        // 110 MiB, 80 of them in HTTP/2 frame buffers. Over HTTP/1.1 each blob has a connection
        // of its own, and a paused body stops reading its socket.
        configuration.httpVersion = .http1Only
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        tlsVerify = options.tlsVerify
        let bounds = TransferBounds(options)
        self.bounds = bounds
        maxAttempts = max(options.retryTimes, 0) + 1
        retryDelay = options.retryDelay
        do throws(UnpackError) {
            credentials = try options.credentials(
                for: host, helperTimeout: min(options.helperTimeout, bounds.remaining ?? .infinity))
            try probe()
        } catch {
            try? client.syncShutdown()
            throw error
        }
    }

    deinit { try? client.syncShutdown() }

    /// `registry HOST, repository REPO`, for messages.
    var place: String { "registry \(host), repository \(repository)" }

    // MARK: - Requests

    /// A response read whole (documents, tokens), at most `limit` bytes of body.
    struct Reply {
        let status: HTTPResponseStatus
        let headers: HTTPHeaders
        let body: [UInt8]
    }

    /// One request's way through redirects, challenges and retries: where it is sent now, and
    /// what has been tried.
    private struct Attempts {
        var url: String
        /// What is asked for, for messages (`manifests/latest`, `blob sha256:…`).
        let what: String
        var redirects: Set<String> = []
        var attempt = 0
        var authenticated = false
    }

    /// Where the registry's API was found: `scheme://apiHost`, the one origin its authorization is
    /// sent to.
    private var registryOrigin: String { "\(currentScheme)://\(apiHost)".lowercased() }

    /// The headers of the next attempt: `extra`, and the current authorization when the request
    /// goes to the registry itself: the same scheme, host and port (never to a host a redirect
    /// named, nor to the same host in another scheme).
    private func headers(for state: inout Attempts, _ extra: [(String, String)]) -> HTTPHeaders {
        state.attempt += 1
        var headers = HTTPHeaders([("User-Agent", "oci-unpack/0.1.0")] + extra)
        if Self.origin(of: state.url) == registryOrigin {
            headers.add(contentsOf: configuredHeaders)
            if let authorization = currentAuthorization { headers.add(name: "Authorization", value: authorization) }
        }
        return headers
    }

    /// A connection that failed: wait and try again, or give up after `maxAttempts` (at once
    /// when the overall deadline passed or a signal came).
    private func connectionFailed(_ error: any Error, _ state: Attempts) throws(UnpackError) {
        if let final = Self.finalFailure(error, place: place, what: state.what) { throw final }
        guard state.attempt < maxAttempts else {
            throw UnpackError(.io, "\(place): \(state.what) failed: \(Self.describe(error))")
        }
        try pause(attempt: state.attempt, retryAfter: nil, what: state.what)
    }

    /// The failures no retry or resume can mend: `--command-timeout` passed, a terminating signal.
    static func finalFailure(_ error: any Error, place: String, what: String) -> UnpackError? {
        if let error = error as? UnpackError, error.code == .interrupted { return error }
        if let timeout = error as? TransferTimeout, case .commandTimeout = timeout {
            return UnpackError(.io, "\(place): \(what): \(timeout)")
        }
        return nil
    }

    /// A response head the caller does not take: follow a redirect, answer a challenge once, wait
    /// and retry a 429 or 5xx, or fail naming what was asked and what the server said.
    private func handle(_ status: HTTPResponseStatus, _ headers: HTTPHeaders, _ state: inout Attempts)
        throws(UnpackError)
    {
        switch status.code {
        case 301, 302, 303, 307, 308:
            guard let location = headers.first(name: "Location") else {
                throw UnpackError(.io, "\(place): a redirect (\(status.code)) without Location for \(state.what)")
            }
            let next = Self.resolve(location, against: state.url)
            try checkRedirect(from: state.url, to: next, what: state.what)
            guard state.redirects.insert(next).inserted, state.redirects.count <= Self.maxRedirects else {
                throw UnpackError(.io, "\(place): redirects for \(state.what) loop or exceed \(Self.maxRedirects)")
            }
            state.url = next
            state.attempt = 0
        case 401:
            guard Self.origin(of: state.url) == registryOrigin, !state.authenticated,
                let challenge = headers.first(name: "WWW-Authenticate")
            else {
                throw UnpackError(
                    .permissionDenied,
                    "\(place) refused \(state.what) (401 Unauthorized; authentication: \(currentAuthMethod))")
            }
            try authenticate(challenge)
            state.authenticated = true
        case 403:
            throw UnpackError(
                .permissionDenied,
                "\(place) forbids \(state.what) (403 Forbidden; authentication: \(currentAuthMethod))")
        case 429, 500..<600:
            guard state.attempt < maxAttempts else {
                throw UnpackError(
                    .io,
                    "\(place) answered \(status.code) \(status.reasonPhrase) for \(state.what) \(state.attempt) times")
            }
            try pause(attempt: state.attempt, retryAfter: headers.first(name: "Retry-After"), what: state.what)
        default:
            throw UnpackError(.io, "\(place) answered \(status.code) \(status.reasonPhrase) for \(state.what)")
        }
    }

    /// GET (or HEAD) of `path` under `/v2/REPO/`, with auth, redirects and retries; a 404 is
    /// returned to the caller, which knows what was missing.
    func fetch(_ path: String, accept: [String] = [], method: HTTPMethod = .GET, limit: Int) throws(UnpackError)
        -> Reply
    {
        try fetch(url: apiURL(path), what: path, accept: accept, method: method, limit: limit)
    }

    /// GET (or HEAD) of any URL (a signature lookaside's, outside the API) with redirects and
    /// retries as for the API; the registry's authorization goes only to the registry's own origin.
    func fetch(url: String, what: String, accept: [String] = [], method: HTTPMethod = .GET, limit: Int)
        throws(UnpackError) -> Reply
    {
        var state = Attempts(url: url, what: what)
        while true {
            let headers = headers(for: &state, accept.isEmpty ? [] : [("Accept", accept.joined(separator: ", "))])
            switch send(url: state.url, method: method, headers: headers, limit: limit) {
            case .success(let reply):
                if (200..<300).contains(reply.status.code) || reply.status.code == 404 { return reply }
                try handle(reply.status, reply.headers, &state)
            case .failure(let error):
                if let tooBig = error as? BodyTooLarge {
                    throw UnpackError(.limitExceeded, "\(place): \(what) is larger than \(tooBig.limit) bytes")
                }
                try connectionFailed(error, state)
            }
        }
    }

    /// Starts the download of a blob at `offset` (a `Range` request after the first byte) once its
    /// response head says 200 or 206; auth, redirects and retries as for `fetch`.
    func download(_ digest: Digest, offset: Int64) throws(UnpackError) -> BodyStream {
        var state = Attempts(url: apiURL("blobs/\(digest)"), what: "blob \(digest)")
        while true {
            let headers = headers(for: &state, offset > 0 ? [("Range", "bytes=\(offset)-")] : [])
            let body = BodyStream(bounds: bounds)
            let head: HTTPResponseHead
            do {
                let request = try HTTPClient.Request(url: state.url, method: .GET, headers: headers)
                body.task = client.execute(request: request, delegate: body)
                head = try body.waitForHead()
            } catch {
                body.cancel()
                try connectionFailed(error, state)
                continue
            }
            switch head.status.code {
            case 200 where offset == 0, 206 where offset > 0:
                return body
            case 200:
                // The server ignored the Range: the stream would restart where it stands.
                body.cancel()
                throw UnpackError(.io, "\(place): the server cannot resume \(digest) (it ignores Range requests)")
            case 404:
                body.cancel()
                throw UnpackError(.notFound, "\(place) has no blob \(digest)", context: .init(digest: digest))
            default:
                body.cancel()
                try handle(head.status, head.headers, &state)
            }
        }
    }

    /// A redirect is followed only to `https`, or to plain `http` from plain `http` where the
    /// target host allows it (``allowsPlainHTTP(to:)``): an https request is never continued in
    /// clear text, where its answer (a tag's manifest, pinned by nothing) could be replaced.
    private func checkRedirect(from url: String, to next: String, what: String) throws(UnpackError) {
        let scheme = next.prefix { $0 != ":" }.lowercased()
        let from = url.prefix { $0 != ":" }.lowercased()
        switch scheme {
        case "https": return
        case "http" where from == "http" && allowsPlainHTTP(to: Self.host(of: next)): return
        case "http" where from == "https":
            throw UnpackError(
                .io,
                "\(place): refusing a redirect of \(what) from https to plain http (\(Self.host(of: next).truncatedForMessage))"
            )
        default:
            throw UnpackError(
                .io,
                "\(place): refusing a redirect of \(what) to \(next.truncatedForMessage) (plain http only for a loopback address or with --tls-verify=false)"
            )
        }
    }

    // MARK: - Scheme, auth

    /// The URL of `path` under the repository: `SCHEME://HOST/v2/REPOSITORY/PATH`, with
    /// hosts.toml's API path and `?ns=` where it sets them.
    private func apiURL(_ path: String) -> String {
        "\(currentScheme)://\(apiHost)\(apiPath)/\(repository)/\(path)\(namespaceQuery)"
    }

    private var currentScheme: String {
        lock.lock()
        defer { lock.unlock() }
        return scheme
    }

    private var currentAuthorization: String? {
        lock.lock()
        defer { lock.unlock() }
        return authorization
    }

    private var currentAuthMethod: String {
        lock.lock()
        defer { lock.unlock() }
        return authMethod
    }

    /// `GET /v2/`: which scheme answers (https; plain http only for a loopback registry, tried
    /// first there, or with `--tls-verify=false`), and the first challenge, answered before any
    /// real request. Only 200 and 401 count as an answer: a TLS server asked in plain HTTP says 400.
    /// Each scheme gets 5 s: the HTTP client retries a failed connection (an untrusted certificate
    /// too) until the request's deadline.
    private func probe() throws(UnpackError) {
        // On loopback a refused connection is final: no server listens there, and retrying
        // until the deadline would only make the user wait.
        if Self.isLoopback(host), Self.loopbackRefusesConnections(host) {
            throw UnpackError(.io, "cannot reach registry \(host): connection refused (nothing listens there)")
        }
        var failures: [String] = []
        let order: [String]
        if let configuredScheme {
            // A configured API root elsewhere than /v2 need not answer at its root: the first
            // request meets any challenge.
            guard apiPath.hasSuffix("/v2") else { return }
            order = [configuredScheme]
        } else {
            order =
                Self.isLoopback(host) ? ["http", "https"] : allowsPlainHTTP(to: host) ? ["https", "http"] : ["https"]
        }
        for candidate in order {
            let url = "\(candidate)://\(apiHost)\(apiPath)/\(namespaceQuery)"
            switch send(url: url, method: .GET, headers: HTTPHeaders(configuredHeaders), limit: 1 << 16, seconds: 5) {
            case .success(let reply) where reply.status == .ok || reply.status == .unauthorized:
                lock.lock()
                scheme = candidate
                lock.unlock()
                if reply.status == .unauthorized, let challenge = reply.headers.first(name: "WWW-Authenticate") {
                    try authenticate(challenge)
                }
                return
            case .success(let reply):
                failures.append(
                    "\(candidate): \(apiPath)/ answered \(reply.status.code) \(reply.status.reasonPhrase)")
            case .failure(let error):
                if let final = Self.finalFailure(error, place: place, what: "/v2/") { throw final }
                failures.append("\(candidate): \(Self.describe(error))")
            }
        }
        throw UnpackError(.io, "cannot reach registry \(host): " + failures.joined(separator: "; "))
    }

    /// Answers a `WWW-Authenticate` challenge: Basic with the credentials, or Bearer with a token
    /// from the challenge's realm (asked with the credentials when there are any).
    private func authenticate(_ challenge: String) throws(UnpackError) {
        let (kind, parameters) = Self.parseChallenge(challenge)
        switch kind.lowercased() {
        case "basic":
            guard let credentials else {
                throw UnpackError(
                    .permissionDenied, "\(place) requires credentials (basic auth): give --creds or an auth file")
            }
            let encoded = Data("\(credentials.user):\(credentials.password)".utf8).base64EncodedString()
            set(authorization: "Basic \(encoded)", method: "basic auth as \(credentials.user)")
        case "bearer":
            guard let realm = parameters["realm"], realm.hasPrefix("https://") || realm.hasPrefix("http://") else {
                throw UnpackError(.io, "\(place) sent a Bearer challenge without a realm URL")
            }
            // The realm meets the registry's own rule: the credentials (and the token) would
            // cross the network in clear text.
            guard realm.hasPrefix("https://") || allowsPlainHTTP(to: Self.host(of: realm)) else {
                throw UnpackError(
                    .io,
                    "\(place): refusing the token realm \(realm.truncatedForMessage): plain http only for a loopback address or with --tls-verify=false"
                )
            }
            var query: [String] = []
            if let service = parameters["service"] { query.append("service=" + Self.percentEncoded(service)) }
            let scope = parameters["scope"] ?? "repository:\(repository):pull"
            query.append("scope=" + Self.percentEncoded(scope))
            let url = realm + (realm.contains("?") ? "&" : "?") + query.joined(separator: "&")
            var headers = HTTPHeaders([("User-Agent", "oci-unpack/0.1.0")])
            if let credentials {
                let encoded = Data("\(credentials.user):\(credentials.password)".utf8).base64EncodedString()
                headers.add(name: "Authorization", value: "Basic \(encoded)")
            }
            let method =
                credentials.map { "a token from \(Self.host(of: realm)) as \($0.user)" }
                ?? "an anonymous token from \(Self.host(of: realm))"
            let reply: Reply
            switch send(url: url, method: .GET, headers: headers, limit: 1 << 20) {
            case .success(let got): reply = got
            case .failure(let error):
                if let final = Self.finalFailure(error, place: place, what: "the token") { throw final }
                throw UnpackError(
                    .io,
                    "\(place): the token service \(Self.host(of: realm)) cannot be reached: \(Self.describe(error))")
            }
            guard reply.status == .ok else {
                throw UnpackError(
                    .permissionDenied,
                    "\(place): the token service \(Self.host(of: realm)) refused (\(reply.status.code) \(reply.status.reasonPhrase); authentication: \(method))"
                )
            }
            guard case .object(let fields)? = try? ImageDocuments.requireStrictJSON(reply.body, place: "token"),
                case .string(let token)? = fields["token"] ?? fields["access_token"], !token.isEmpty
            else {
                throw UnpackError(.io, "\(place): the token service \(Self.host(of: realm)) sent no token")
            }
            set(authorization: "Bearer \(token)", method: method)
        default:
            throw UnpackError(
                .permissionDenied, "\(place) asks for \(kind) authentication, which oci-unpack does not speak")
        }
    }

    private func set(authorization: String, method: String) {
        lock.lock()
        self.authorization = authorization
        authMethod = method
        lock.unlock()
    }

    // MARK: - Helpers

    /// A body past a request's limit.
    struct BodyTooLarge: Error {
        let limit: Int
    }

    /// One request, its body read whole up to `limit`, on the caller's thread: through a
    /// ``BodyStream``, so that the minimum rate, the overall deadline and `seconds` (the request's
    /// own deadline, if any) bound documents and tokens as they bound blobs.
    private func send(url: String, method: HTTPMethod, headers: HTTPHeaders, limit: Int, seconds: Double? = nil)
        -> Result<Reply, any Error>
    {
        // The client's own deadline first: at it, the client reports why its connections failed
        // (an untrusted certificate, say); the body's is a backstop a second later.
        let body = BodyStream(bounds: bounds, requestSeconds: seconds.map { $0 + 1 })
        do {
            let request = try HTTPClient.Request(url: url, method: method, headers: headers)
            body.task = client.execute(
                request: request, delegate: body,
                deadline: seconds.map { .now() + .milliseconds(Int64($0 * 1000)) })
            let head = try body.waitForHead()
            var bytes: [UInt8] = []
            while let chunk = try body.next() {
                guard bytes.count + chunk.readableBytes <= limit else {
                    body.cancel()
                    return .failure(BodyTooLarge(limit: limit))
                }
                bytes += chunk.readableBytesView
            }
            return .success(Reply(status: head.status, headers: head.headers, body: bytes))
        } catch {
            body.cancel()
            return .failure(error)
        }
    }

    /// Backoff before another attempt: `--retry-delay`, else 0.5 s doubling to 8 s; or the server's `Retry-After`
    /// seconds, at most 30; never past the overall deadline (which ends the request instead).
    private func pause(attempt: Int, retryAfter: String?, what: String) throws(UnpackError) {
        let seconds = Self.backoff(attempt: attempt, retryAfter: retryAfter, fixed: retryDelay)
        if let remaining = bounds.remaining, remaining <= seconds {
            usleep(useconds_t(remaining * 1_000_000))
            throw UnpackError(
                .io, "\(place): \(what): \(TransferTimeout.commandTimeout(seconds: bounds.commandTimeout ?? 0))")
        }
        usleep(useconds_t(seconds * 1_000_000))
    }

    /// The seconds before attempt `attempt + 1`: the server's `Retry-After` (at most 30), else
    /// `--retry-delay`, else 0.5 s doubling to 8 s.
    package static func backoff(attempt: Int, retryAfter: String?, fixed: Double?) -> Double {
        if let retryAfter, let asked = Double(retryAfter.trimmedOfSpaces) { return min(max(asked, 0), 30) }
        return fixed ?? min(0.5 * Double(1 << min(attempt - 1, 4)), 8)
    }

    static func describe(_ error: any Error) -> String {
        if let ssl = error as? NIOSSLError {
            return "TLS: \(ssl) (a registry with a private CA needs --cert-dir; --tls-verify=false skips the check)"
        }
        // NIO's own text for a failed connect names the wrong reason and leaves a parenthesis open.
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)).lowercased() }
        return String(describing: error)
    }

    /// Whether every address of the loopback `host` (`NAME[:PORT]`, `[V6]:PORT`; 80 and 443
    /// without a port) refuses a TCP connection on every port the probe would try.
    static func loopbackRefusesConnections(_ host: String) -> Bool {
        guard let (name, port) = split(host) else { return false }
        for port in port.map({ [$0] }) ?? ["80", "443"] {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(name, port, &hints, &list) == 0, let first = list else { return false }
            defer { freeaddrinfo(first) }
            var entry: UnsafeMutablePointer<addrinfo>? = first
            while let info = entry {
                let type = info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
                let fd = socket(info.pointee.ai_family, type, 0)
                guard fd >= 0 else { return false }
                defer { close(fd) }
                var e: Int32 = 0
                if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 { e = errno }
                if e == EINPROGRESS {
                    // A filtered port does not answer: up to a second, then the HTTP client decides.
                    var waiting = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    guard poll(&waiting, 1, 1000) == 1 else { return false }
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &length) == 0 else { return false }
                }
                if e != ECONNREFUSED { return false }
                entry = info.pointee.ai_next
            }
        }
        return true
    }

    /// `NAME[:PORT]`, `[V6][:PORT]` or a bare IPv6 literal (two or more colons, no port) split
    /// into the name and the port; nil for an unclosed bracket.
    static func split(_ host: String) -> (name: String, port: String?)? {
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            return (
                String(host[host.index(after: host.startIndex)..<close]),
                rest.hasPrefix(":") ? String(rest.dropFirst()) : nil
            )
        }
        guard host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") else { return (host, nil) }
        return (String(host[..<colon]), String(host[host.index(after: colon)...]))
    }

    /// Whether `host` (`NAME[:PORT]`, `[V6]:PORT`) names the loopback interface by its spelling
    /// alone: `localhost`, an IPv4 literal in 127.0.0.0/8, or the IPv6 literal `::1` in any of its
    /// forms. A DNS name is never loopback, whatever it starts with (`127.evil.test` resolves
    /// wherever its owner says), and no name is resolved to decide: what a resolver answers now
    /// need not be what the connection gets.
    package static func isLoopback(_ host: String) -> Bool {
        guard let name = split(host)?.name else { return false }
        if name.lowercased() == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, name, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, name, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { bytes in bytes.dropLast().allSatisfy { $0 == 0 } && bytes.last == 1 }
        }
        return false
    }

    /// Whether a URL on `host` may be spoken to in plain HTTP: only a loopback literal
    /// (``isLoopback(_:)``) or any host with `--tls-verify=false`. The registry, its token realm
    /// and every redirect meet this one rule.
    func allowsPlainHTTP(to host: String) -> Bool {
        !tlsVerify || Self.isLoopback(host) || (configuredScheme == "http" && host.lowercased() == apiHost.lowercased())
    }

    /// `scheme://host[:port]` of a URL, lowercased: where credentials were given for is compared
    /// by this, whole.
    static func origin(of url: String) -> String {
        guard let start = url.firstRange(of: "://")?.upperBound else { return "" }
        return (url[..<start] + url[start...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }).lowercased()
    }

    static func host(of url: String) -> String {
        guard let start = url.firstRange(of: "://")?.upperBound else { return "" }
        return String(url[start...].prefix { $0 != "/" && $0 != "?" })
    }

    static func resolve(_ location: String, against url: String) -> String {
        if location.contains("://") { return location }
        guard let start = url.firstRange(of: "://")?.upperBound else { return location }
        let origin = url[..<start] + url[start...].prefix { $0 != "/" }
        return location.hasPrefix("/") ? origin + location : origin + "/" + location
    }

    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if c.isASCII && (c.isLetter || c.isNumber || "-._~".contains(c)) {
                out.append(c)
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    /// `Bearer realm="…",service="…",scope="…"` → ("Bearer", parameters).
    static func parseChallenge(_ header: String) -> (String, [String: String]) {
        let trimmed = header.trimmedOfSpaces
        let kind = String(trimmed.prefix { $0 != " " })
        var rest = Substring(trimmed.dropFirst(kind.count))
        var parameters: [String: String] = [:]
        while true {
            rest = rest.drop { $0 == " " || $0 == "," }
            guard let equals = rest.firstIndex(of: "=") else { break }
            let key = rest[..<equals].trimmedOfSpaces.lowercased()
            rest = rest[rest.index(after: equals)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                while let c = rest.first, c != "\"" {
                    if c == "\\", let next = rest.dropFirst().first {
                        value.append(next)
                        rest = rest.dropFirst(2)
                    } else {
                        value.append(c)
                        rest = rest.dropFirst()
                    }
                }
                rest = rest.dropFirst()
            } else {
                value = String(rest.prefix { $0 != "," })
                rest = rest.dropFirst(value.count)
            }
            parameters[key] = value
        }
        return (kind, parameters)
    }

    /// hosts.toml's `ca` and `client` files (or a host directory's certificates).
    private static func addConfigured(_ endpoint: RegistriesConf.Endpoint, to tls: inout TLSConfiguration)
        throws(UnpackError)
    {
        let place = endpoint.configuredIn ?? endpoint.host
        for file in endpoint.caFiles {
            guard FileManager.default.isReadableFile(atPath: file) else {
                throw UnpackError(.notFound, "\(place): the CA file \(file) cannot be read", context: .init(path: file))
            }
            tls.additionalTrustRoots.append(.file(file))
        }
        // NIO takes one client identity: the first pair.
        guard let client = endpoint.clientCertificates.first else { return }
        try setIdentity(certificate: client.certificate, key: client.key ?? client.certificate, in: &tls) {
            "\(place): the client certificate \(client.certificate)\(client.key.map { " and key \($0)" } ?? "") cannot be read as PEM: \($0)"
        }
    }

    /// The TLS client identity from PEM files; `failure` words the error.
    private static func setIdentity(
        certificate: String, key: String, in tls: inout TLSConfiguration, failure: (any Error) -> String
    ) throws(UnpackError) {
        do {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        } catch {
            throw UnpackError(.invalidArgument, failure(error), context: .init(path: certificate))
        }
    }

    private static func addCertificates(from directory: String, to tls: inout TLSConfiguration) throws(UnpackError) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw UnpackError(.notFound, "--cert-dir \(directory) cannot be read", context: .init(path: directory))
        }
        for name in names.sorted() {
            let path = directory + "/" + name
            if name.hasSuffix(".crt") {
                tls.additionalTrustRoots.append(.file(path))
            } else if name.hasSuffix(".cert") {
                let key = String(path.dropLast(".cert".count)) + ".key"
                guard FileManager.default.fileExists(atPath: key) else {
                    throw UnpackError(.notFound, "--cert-dir: \(name) has no \(key)", context: .init(path: key))
                }
                try setIdentity(certificate: path, key: key, in: &tls) {
                    "--cert-dir: \(path) is not a PEM certificate: \($0)"
                }
            }
        }
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    var trimmedOfSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
