import Foundation
import GatewayCore
import GatewayTesting
import Hummingbird
import HummingbirdHTTP2
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization

/// A local server speaking a push provider's wire format: on 127.0.0.1 port 0, plain HTTP/1.1
/// or HTTP/2 over TLS (self-signed), recording every request and answering as the test says.
final class PushReceiver: Sendable {
    struct Request: Sendable {
        var method: String
        var path: String
        /// Lowercased header names.
        var headers: [String: String]
        var body: [UInt8]
    }

    struct Reply: Sendable {
        var status: Int = 201
        var headers: [String: String] = [:]
        var body: String = ""
    }

    final class Box: Sendable {
        /// Guards the requests seen and the answer in force.
        let state = Mutex<(requests: [Request], answer: @Sendable (Request) -> Reply)>(([], { _ in Reply() }))
    }

    let port: Int
    let scheme: String
    private let box: Box
    private let group: ServiceGroup
    private let runner: Task<Void, any Error>

    var baseURL: String { "\(scheme)://127.0.0.1:\(port)" }

    /// Boots the server; with `tls` it speaks HTTP/2 (ALPN h2) and HTTP/1.1 over TLS.
    static func start(tls: TLSConfiguration? = nil) async throws -> PushReceiver {
        let box = Box()
        let router = Router()
        router.on("**", method: .post) { request, context -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let seen = Request(
                method: request.method.rawValue, path: request.uri.path + (request.uri.query.map { "?" + $0 } ?? ""), headers: headers,
                body: Array(body.readableBytesView))
            let reply = box.state.withLock { state -> Reply in
                state.requests.append(seen)
                return state.answer(seen)
            }
            var fields = HTTPFields()
            for (name, value) in reply.headers { fields[.init(name)!] = value }
            return Response(status: .init(code: reply.status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: reply.body)))
        }
        let ports = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "push-receiver")
        logger.logLevel = .critical
        let configuration = ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0))
        let onRunning: @Sendable (any Channel) async -> Void = { channel in
            ports.continuation.yield(channel.localAddress?.port ?? 0)
            ports.continuation.finish()
        }
        let group: ServiceGroup
        if let tls {
            let app = Application(
                router: router, server: try .http2Upgrade(tlsConfiguration: tls), configuration: configuration, onServerRunning: onRunning,
                logger: logger)
            group = ServiceGroup(services: [app], logger: logger)
        } else {
            let app = Application(router: router, configuration: configuration, onServerRunning: onRunning, logger: logger)
            group = ServiceGroup(services: [app], logger: logger)
        }
        let runner = Task { try await group.run() }
        var port = 0
        for await bound in ports.stream { port = bound }
        return PushReceiver(box: box, port: port, scheme: tls == nil ? "http" : "https", group: group, runner: runner)
    }

    private init(box: Box, port: Int, scheme: String, group: ServiceGroup, runner: Task<Void, any Error>) {
        self.box = box
        self.port = port
        self.scheme = scheme
        self.group = group
        self.runner = runner
    }

    var requests: [Request] { box.state.withLock { $0.requests } }

    func answer(_ answer: @escaping @Sendable (Request) -> Reply) {
        box.state.withLock { $0.answer = answer }
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await runner.value
    }
}

/// A self-signed certificate for 127.0.0.1 made with the `openssl` command (scripts/setup.sh
/// installs it), in a temporary directory.
struct TestCertificate {
    let directory: String
    var certPath: String { directory + "/cert.pem" }
    var keyPath: String { directory + "/key.pem" }

    static func make() throws -> TestCertificate {
        let directory = NSTemporaryDirectory() + "push-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let status = try Command.runBlocking("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", directory + "/key.pem", "-out", directory + "/cert.pem",
        ], outputPath: "/dev/null")
        guard status == 0 else { throw CertificateError() }
        return TestCertificate(directory: directory)
    }

    struct CertificateError: Error {}

    func serverTLS() throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certPath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem)))
        // h2 only: a client that cannot speak HTTP/2 fails here rather than falling back.
        tls.applicationProtocols = ["h2"]
        return tls
    }
}
