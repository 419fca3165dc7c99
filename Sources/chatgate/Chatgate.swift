import ArgumentParser
import Foundation
import GatewayBench
import GatewayConfig
import GatewayCore
import Logging
import StageAuth

@main
struct Chatgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chatgate",
        abstract: "ChatGateway: a real-time chat gateway with a YAML pipeline of stages.",
        subcommands: [Serve.self, CheckConfig.self, Token.self, Chat.self, BenchCommand.self],
        defaultSubcommand: Serve.self
    )
}

/// Loads the config or prints its diagnostics and exits 1.
func loadConfiguration(_ path: String) throws -> GatewayConfiguration {
    do {
        return try ConfigLoader.load(path: path, stageKinds: Set(BuiltInStages.factories.map(\.kind)))
    } catch {
        FileHandle.standardError.write(Data((error.description + "\n").utf8))
        throw ExitCode(1)
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway.")

    @Option(name: .shortAndLong, help: "The config file.")
    var config = "config.yaml"

    func run() async throws {
        EventLoopSizing.apply()
        let configuration = try loadConfiguration(config)
        let level = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
            ?? Logger.Level(rawValue: configuration.logging.level) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "chatgate")
        let bootstrap: Bootstrap
        do {
            bootstrap = try await Bootstrap.make(configuration: configuration, configPath: config, logger: logger)
        } catch {
            let text = error is ConfigError ? "\(error)" : "\(config): error: \(error)"
            FileHandle.standardError.write(Data((text + "\n").utf8))
            throw ExitCode(1)
        }
        let group = try bootstrap.serviceGroup(logger: logger, reloadSignal: .sighup)
        let application = bootstrap.application
        Task {
            let ports = await application.listeningPorts()
            logger.info("listening", metadata: ["public": "\(configuration.listen.public.host):\(ports.public)", "admin": "\(configuration.listen.admin.host):\(ports.admin)"])
        }
        try await group.run()
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate a config file and print the pipeline it would build.")

    @Argument(help: "The config file.")
    var path = "config.yaml"

    func run() async throws {
        let configuration = try loadConfiguration(path)
        let logger = Logger(label: "chatgate.check-config", factory: { _ in SwiftLogNoOpLogHandler() })
        let pipeline: Pipeline
        do {
            pipeline = try Pipeline.build(
                configuration.pipeline, registry: try BuiltInStages.registry(), logger: logger, clock: SystemClock(),
                stores: Stores(NoStore()), presence: NoPresence(), node: configuration.node)
        } catch {
            // Config errors already carry file:line:column; other build errors get the file name.
            let text = error is ConfigError ? "\(error)" : "\(path): error: \(error)"
            FileHandle.standardError.write(Data((text + "\n").utf8))
            throw ExitCode(1)
        }
        print("\(path): ok")
        let store = configuration.store
        let where_ = store.kind == .postgres ? "(pool \(store.poolSize))" : store.path
        print("node \(configuration.node.id) (worker \(configuration.node.workerID)), store \(store.kind.rawValue) \(where_) (\(store.durability.rawValue))")
        print("pipeline:")
        for (index, entry) in pipeline.entries.enumerated() {
            let on = entry.on.map(\.rawValue).sorted().joined(separator: ",")
            print("  \(index + 1). \(entry.name) (\(entry.kind)) on [\(on)] \(entry.settings.jsonText)")
        }
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mint a development JWT with the HS256 secret of the config's auth stage.")

    @Argument(help: "The user id (the token's sub).")
    var user: String

    @Option(help: "Lifetime in seconds.")
    var ttl = 3600

    @Option(name: .shortAndLong, help: "The config file.")
    var config = "config.yaml"

    func run() async throws {
        let configuration = try loadConfiguration(config)
        guard let entry = configuration.pipeline.first(where: { $0.stage == "auth" }) else {
            FileHandle.standardError.write(Data("\(config): error: no auth stage in the pipeline\n".utf8))
            throw ExitCode(1)
        }
        do {
            let settings = try entry.settings.decode(AuthSettings.self)
            let token = try await AuthStageFactory.mintHS256(settings: settings, user: user, ttlSeconds: ttl, now: SystemClock().nowMillis())
            print(token)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
