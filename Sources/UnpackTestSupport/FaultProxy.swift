import Foundation
import Glibc

/// A proxy on 127.0.0.1 between oci-unpack and a test registry that breaks requests on purpose,
/// by rules the test gives: a path fragment, what to do, and how many times (then it forwards).
/// Written in Python (python3 is one of hack/setup's packages) and started by the test.
package final class FaultProxy: @unchecked Sendable {
    /// What a rule does to a request whose path contains its fragment.
    package enum Fault: Sendable {
        /// Answer with this status (and `Retry-After` when given), without asking the registry.
        case status(Int, retryAfter: Int?)
        /// Forward, but close the connection after this many bytes of the body.
        case drop(afterBytes: Int)
        /// Forward with one byte of the body changed.
        case corrupt
        /// Answer 200 with a body that never ends.
        case endless
        /// Redirect to the same path with another query, forever.
        case redirectLoop
        /// Redirect to the same path at `origin` (`http://HOST:PORT`; `SELF` in it stands for the
        /// proxy's own `127.0.0.1:PORT`).
        case redirect(to: String)
        /// Answer 401 with this `WWW-Authenticate` challenge.
        case challenge(String)
        /// Forward, sending the body one byte every `everySeconds` seconds.
        case trickle(everySeconds: Double)
        /// Forward only a request whose URL holds `query` (such as `ns=…`, which Spegel requires)
        /// and, when given, the header; answer 400 otherwise.
        case require(query: String, header: (name: String, value: String)?)
    }

    package let port: Int
    let process: Process
    let directory: TemporaryDirectory
    package var host: String { "127.0.0.1:\(port)" }
    /// Every request so far, as `METHOD PATH?QUERY`, in order.
    package var requests: [String] {
        ((try? String(contentsOfFile: directory.path + "/requests.log", encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init)
    }

    /// Starts the proxy in front of `upstream` (`HOST:PORT`, plain HTTP) with `rules`: (path
    /// fragment, fault, times; 0 times for always). With `tls` (a certificate and key file) the
    /// proxy speaks TLS, and so to the upstream (unverified).
    package init(upstream: String, rules: [(String, Fault, Int)], tls: (certificate: String, key: String)? = nil)
        throws
    {
        directory = try TemporaryDirectory(prefix: "oci-unpack-proxy")
        port = try TestRegistry.freePort()
        var plan: [[String: Any]] = []
        for (fragment, fault, times) in rules {
            var rule: [String: Any] = ["match": fragment, "times": times]
            switch fault {
            case .status(let code, let retryAfter):
                rule["action"] = "status"
                rule["code"] = code
                if let retryAfter { rule["retryAfter"] = retryAfter }
            case .drop(let bytes):
                rule["action"] = "drop"
                rule["bytes"] = bytes
            case .corrupt: rule["action"] = "corrupt"
            case .endless: rule["action"] = "endless"
            case .redirectLoop: rule["action"] = "redirect-loop"
            case .redirect(let origin):
                rule["action"] = "redirect"
                rule["origin"] = origin
            case .challenge(let header):
                rule["action"] = "challenge"
                rule["header"] = header
            case .trickle(let seconds):
                rule["action"] = "trickle"
                rule["seconds"] = seconds
            case .require(let query, let header):
                rule["action"] = "require"
                rule["query"] = query
                if let header {
                    rule["header"] = header.name
                    rule["value"] = header.value
                }
            }
            plan.append(rule)
        }
        let planPath = directory.path + "/plan.json"
        try JSONSerialization.data(withJSONObject: plan).write(to: URL(fileURLWithPath: planPath))
        let scriptPath = directory.path + "/proxy.py"
        try Self.script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        process = try TestRegistry.serve(
            ["python3", scriptPath, String(port), upstream, planPath, directory.path + "/requests.log"]
                + (tls.map { [$0.certificate, $0.key] } ?? []),
            on: port)
    }

    deinit { TestRegistry.stop(process) }

    static let script = #"""
        import http.client, http.server, json, ssl, sys, threading, time

        port, upstream, plan_path, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
        plan = json.load(open(plan_path))
        lock = threading.Lock()

        def rule_for(path):
            with lock:
                for rule in plan:
                    if rule["match"] in path and (rule["times"] == 0 or rule.get("used", 0) < rule["times"]):
                        rule["used"] = rule.get("used", 0) + 1
                        return rule
            return None

        class Proxy(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self, method):
                with lock:
                    with open(log_path, "a") as log:
                        log.write("%s %s\n" % (method, self.path))
                rule = rule_for(self.path)
                action = rule["action"] if rule else None
                if action == "require":
                    query = self.path.split("?", 1)[1] if "?" in self.path else ""
                    missing = rule["query"] not in query.split("&")
                    if "header" in rule and self.headers.get(rule["header"]) != rule["value"]:
                        missing = True
                    if missing:
                        self.send_response(400)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                if action == "status":
                    self.send_response(rule["code"])
                    if "retryAfter" in rule:
                        self.send_header("Retry-After", str(rule["retryAfter"]))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if action == "challenge":
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", rule["header"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if action == "redirect":
                    self.send_response(302)
                    origin = rule["origin"].replace("SELF", "127.0.0.1:%d" % port)
                    self.send_header("Location", origin + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if action == "redirect-loop":
                    target = self.path.split("?")[0] + ("?a" if not self.path.endswith("?a") else "?b")
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if action == "endless":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.end_headers()
                    try:
                        while True:
                            self.wfile.write(b"\0" * 65536)
                    except Exception:
                        return
                if tls:
                    connection = http.client.HTTPSConnection(upstream, context=ssl._create_unverified_context())
                else:
                    connection = http.client.HTTPConnection(upstream)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                connection.request(method, self.path, headers=headers)
                response = connection.getresponse()
                body = response.read()
                if action == "corrupt" and body:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if method == "HEAD":
                    return
                if action == "trickle":
                    try:
                        for i in range(len(body)):
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(rule["seconds"])
                    except Exception:
                        pass
                    self.close_connection = True
                    return
                if action == "drop":
                    self.wfile.write(body[: rule["bytes"]])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

            def do_GET(self):
                self.forward("GET")

            def do_HEAD(self):
                self.forward("HEAD")

        tls = len(sys.argv) > 6
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Proxy)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(sys.argv[5], sys.argv[6])
            server.socket = context.wrap_socket(server.socket, server_side=True)
        server.serve_forever()
        """#
}
