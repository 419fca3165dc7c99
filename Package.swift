// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "ChatGateway",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "chatgate", targets: ["chatgate"]),
        .library(name: "GatewayCore", targets: ["GatewayCore"]),
        .library(name: "GatewayTesting", targets: ["GatewayTesting"]),
        .library(name: "ChatClient", targets: ["ChatClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
    ],
    targets: [
        // MARK: Core and backends
        .target(
            name: "GatewayCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GatewayConfig",
            dependencies: [
                "GatewayCore",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SQLiteStore",
            dependencies: [
                "GatewayCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PostgresStore",
            dependencies: [
                "GatewayCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GatewayServer",
            dependencies: [
                "GatewayCore",
                "GatewayConfig",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // Long-poll requests for a session held by another cluster node are relayed to it.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ChatClient",
            dependencies: [
                "GatewayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        // Running a local server by hand (spawn and wait, a free port, Debian's PostgreSQL):
        // shared by the bench and the test helpers.
        .target(name: "LocalProcess", swiftSettings: swiftSettings),
        .target(
            name: "GatewayTesting",
            dependencies: [
                "GatewayCore", "LocalProcess", .product(name: "Logging", package: "swift-log"),
                // The config loader's own decoder for stage settings (StageSettings).
                "GatewayConfig",
                // The local HTTP service stages' tests call (LocalHTTPService).
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // The raw WebSocket test client (WebSocketClient, WebSocketStream).
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                // Programs tests run (Command, BackgroundProcess).
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Media (docs/MEDIA.md): zstd and libvips from Debian, blobs on disk or in S3
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CVips", path: "Sources/CVips", pkgConfig: "vips", providers: [.apt(["libvips-dev"])]),
        .target(
            name: "MediaStore",
            dependencies: [
                "GatewayCore", "CZstd", "CVips",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Stages (one module each, under Plugins/; these are regular targets, not SwiftPM plugins)
        .target(
            name: "StageAuth",
            dependencies: ["GatewayCore", .product(name: "JWTKit", package: "jwt-kit")],
            path: "Plugins/StageAuth",
            swiftSettings: swiftSettings
        ),
        .target(name: "StageID", dependencies: ["GatewayCore"], path: "Plugins/StageID", swiftSettings: swiftSettings),
        .target(name: "StagePersist", dependencies: ["GatewayCore"], path: "Plugins/StagePersist", swiftSettings: swiftSettings),
        .target(name: "StageFanout", dependencies: ["GatewayCore"], path: "Plugins/StageFanout", swiftSettings: swiftSettings),
        .target(name: "StageRateLimit", dependencies: ["GatewayCore"], path: "Plugins/StageRateLimit", swiftSettings: swiftSettings),
        .target(
            name: "StageWebhook",
            dependencies: [
                "GatewayCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Plugins/StageWebhook",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "StagePush",
            dependencies: [
                "GatewayCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Plugins/StagePush",
            swiftSettings: swiftSettings
        ),
        // Custom stages (docs/STAGES.md): kinds with a dotted owner prefix.
        .target(name: "StageWordFilter", dependencies: ["GatewayCore"], path: "Plugins/StageWordFilter", swiftSettings: swiftSettings),
        .target(name: "StageMedia", dependencies: ["GatewayCore"], path: "Plugins/StageMedia", swiftSettings: swiftSettings),
        // new-stage: stage targets above this line

        // MARK: Benchmark (`chatgate bench`)
        .target(
            name: "GatewayBench",
            dependencies: [
                "GatewayCore", "StageAuth", "MediaStore", "LocalProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Executable
        .executableTarget(
            name: "chatgate",
            dependencies: [
                "GatewayCore", "GatewayConfig", "GatewayServer", "SQLiteStore", "PostgresStore", "GatewayBench", "ChatClient",
                "StageAuth", "StageID", "StagePersist", "StageFanout", "StageRateLimit", "StageWebhook", "StageWordFilter",
                "StagePush", "MediaStore", "StageMedia",
                // new-stage: stage dependencies above this line
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        .testTarget(
            name: "GatewayBenchTests",
            dependencies: ["GatewayBench", "GatewayCore", "GatewayTesting", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayCoreTests",
            dependencies: [
                "GatewayCore", "GatewayTesting", .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "chatgate", "ChatClient", "GatewayCore", "GatewayConfig", "GatewayServer", "GatewayTesting", "StageAuth", "MediaStore",
                "StagePush",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayConfigTests",
            dependencies: ["GatewayConfig", "GatewayCore"],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "StageIDTests",
            dependencies: ["StageID", "GatewayCore", "GatewayTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SQLiteStoreTests",
            dependencies: ["SQLiteStore", "GatewayCore", "GatewayTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PostgresStoreTests",
            dependencies: ["PostgresStore", "SQLiteStore", "GatewayCore", "GatewayTesting", .product(name: "PostgresNIO", package: "postgres-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "StageAuthTests",
            dependencies: [
                "StageAuth", "GatewayCore", "GatewayTesting", .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "StageRateLimitTests",
            dependencies: ["StageRateLimit", "GatewayCore", "GatewayTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "StageWebhookTests",
            dependencies: [
                "StageWebhook", "GatewayCore", "GatewayTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "StageWordFilterTests",
            dependencies: ["StageWordFilter", "GatewayCore", "GatewayTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "StagePushTests",
            dependencies: [
                "StagePush", "GatewayCore", "GatewayTesting", "SQLiteStore", "PostgresStore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MediaStoreTests",
            dependencies: [
                "MediaStore", "GatewayCore", "GatewayTesting", "CZstd",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "StageMediaTests",
            dependencies: [
                "StageMedia", "MediaStore", "GatewayCore", "GatewayTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "StagePersistTests", dependencies: ["StagePersist", "GatewayCore", "GatewayTesting"], swiftSettings: swiftSettings),
        .testTarget(
            name: "StageFanoutTests", dependencies: ["StageFanout", "StageID", "StagePersist", "GatewayCore", "GatewayTesting"], swiftSettings: swiftSettings),
        // Library targets' own unit tests (the end-to-end suites cover them over sockets too).
        .testTarget(name: "ChatClientTests", dependencies: ["ChatClient"], swiftSettings: swiftSettings),
        .testTarget(name: "GatewayServerTests", dependencies: ["GatewayServer"], swiftSettings: swiftSettings),
        .testTarget(name: "LocalProcessTests", dependencies: ["LocalProcess"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GatewayTestingTests",
            dependencies: [
                "GatewayTesting", "GatewayCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // new-stage: test targets above this line
    ]
)
