import Foundation
import GatewayCore
import PostgresNIO

/// Where and how `PostgresStore` connects: parsed from a `postgres://` URL.
///
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require]`
/// (`postgresql://` too). The port defaults to 5432, `sslmode` to `prefer`.
public struct PostgresStoreConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tlsMode: TLSMode
    /// Most connections the pool opens (`store.pool_size`).
    public var poolSize: Int
    /// `synchronous_commit` of every connection: `on` for `.full` (a commit returns once
    /// PostgreSQL flushed its WAL), `off` for `.relaxed`.
    public var durability: StoreSettings.Durability
    /// How long opening a connection may take before the store answers `unavailable`.
    public var connectTimeout: Duration = .seconds(5)
    /// How long one store operation may wait for PostgreSQL before it fails with `unavailable`.
    public var requestTimeout: Duration = .seconds(5)

    public enum TLSMode: String, Sendable { case disable, prefer, require }

    public init(url: String, poolSize: Int = 16, durability: StoreSettings.Durability = .full) throws {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
            scheme == "postgres" || scheme == "postgresql"
        else {
            throw GatewayError(.internal, "store.url must be a postgres:// URL")
        }
        guard let host = components.host, !host.isEmpty else { throw GatewayError(.internal, "store.url has no host") }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty else { throw GatewayError(.internal, "store.url names no database") }
        self.host = host
        self.port = components.port ?? 5432
        self.username = components.user.flatMap { $0.removingPercentEncoding } ?? "postgres"
        self.password = components.password.flatMap { $0.removingPercentEncoding }
        self.database = database
        let mode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        guard let tlsMode = TLSMode(rawValue: mode) else {
            throw GatewayError(.internal, "store.url: sslmode must be disable, prefer or require (was '\(mode)')")
        }
        self.tlsMode = tlsMode
        self.poolSize = max(1, poolSize)
        self.durability = durability
    }

    /// The client configuration of postgres-nio.
    var client: PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS =
            switch tlsMode {
            case .disable: .disable
            case .prefer: .prefer(.makeClientConfiguration())
            case .require: .require(.makeClientConfiguration())
            }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.maximumConnections = poolSize
        configuration.options.minimumConnections = min(2, poolSize - 1)
        configuration.options.connectTimeout = connectTimeout
        configuration.options.additionalStartupParameters = [
            ("synchronous_commit", durability == .full ? "on" : "off"),
            ("application_name", "chatgate"),
        ]
        return configuration
    }
}
