import NIOCore

/// What the generator needs to create a client off its event loop.
struct ClientSpec: Sendable {
    var user: String
    var token: String
    var role: BenchClient.Role
    var target: [UInt8]? = nil
    var peer: Int? = nil
}

/// The async side's handle on a `LoadGenerator`: every call hops onto the generator's loop.
struct GeneratorHandle: Sendable {
    let eventLoop: any EventLoop
    private let generator: NIOLoopBound<LoadGenerator>

    /// Creates a generator with these clients on `eventLoop`.
    static func make(on eventLoop: any EventLoop, plan: LoadPlan, clients: [ClientSpec]) async throws -> GeneratorHandle {
        let bound = try await eventLoop.submit {
            let generator = LoadGenerator(eventLoop: eventLoop, plan: plan)
            generator.add(clients.enumerated().map { index, spec in
                BenchClient(index: index, user: spec.user, token: spec.token, role: spec.role, target: spec.target, peer: spec.peer)
            })
            return NIOLoopBound(generator, eventLoop: eventLoop)
        }.get()
        return GeneratorHandle(eventLoop: eventLoop, generator: bound)
    }

    private init(eventLoop: any EventLoop, generator: NIOLoopBound<LoadGenerator>) {
        self.eventLoop = eventLoop
        self.generator = generator
    }

    /// Runs `body` on the generator's loop.
    @discardableResult
    func run<T: Sendable>(_ body: @escaping @Sendable (LoadGenerator) throws -> T) async throws -> T {
        let generator = self.generator
        return try await eventLoop.submit { try body(generator.value) }.get()
    }

    /// Runs `body` on the generator's loop and waits for the future it returns.
    func future<T: Sendable>(_ body: @escaping @Sendable (LoadGenerator) -> EventLoopFuture<T>) async throws -> T {
        let generator = self.generator
        return try await eventLoop.flatSubmit { body(generator.value) }.get()
    }
}
