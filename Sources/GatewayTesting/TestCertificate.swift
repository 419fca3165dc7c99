import Foundation
import NIOSSL

/// A self-signed certificate for 127.0.0.1 (P-256), made with the `openssl` command
/// (scripts/setup.sh installs it) in a fresh temporary directory: for TLS test servers
/// (`LocalHTTPService.start(tls:)`, a gateway with `tls:`) and the clients that trust them.
public struct TestCertificate: Sendable {
    /// The directory holding `cert.pem` and `key.pem`; `remove()` deletes it.
    public let directory: String
    public var certPath: String { directory + "/cert.pem" }
    public var keyPath: String { directory + "/key.pem" }

    /// Makes a certificate valid for two days, with `IP:127.0.0.1` as its subject alternative name.
    public static func make() throws -> TestCertificate {
        let directory = NSTemporaryDirectory() + "chatgate-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let status = try Command.runBlocking("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", directory + "/key.pem", "-out", directory + "/cert.pem",
        ], outputPath: "/dev/null")
        guard status == 0 else { throw CertificateError(status: status) }
        return TestCertificate(directory: directory)
    }

    /// `openssl` failed.
    public struct CertificateError: Error, CustomStringConvertible {
        public let status: Int32
        public var description: String { "openssl could not make a test certificate (exit status \(status))" }
    }

    /// A server configuration with this certificate and `protocols` offered by ALPN (default:
    /// h2 only, so a client that cannot speak HTTP/2 fails rather than falling back).
    public func serverTLS(protocols: [String] = ["h2"]) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certPath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem)))
        tls.applicationProtocols = protocols
        return tls
    }

    /// A client configuration that trusts this certificate (and only it).
    public func clientTLS() -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(certPath)
        return tls
    }

    /// Deletes the directory.
    public func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}
