import Foundation
import NIOCore

/// One server's figures from one run, with the errors the generator saw.
struct Measurement: Sendable {
    var figures = Figures()
    var errors: [String: Int] = [:]
    var notes: [String] = []
}

/// The scenarios: each builds its clients, drives the generator against one server and returns
/// that server's figures. The runner calls them once per server, so gateway and baseline see the
/// very same load.
struct Scenarios: Sendable {
    let parameters: BenchParameters
    let eventLoop: any EventLoop
    /// A per-invocation prefix for user and group ids (a `--url` gateway keeps its data).
    let prefix: String
    let log: @Sendable (String) -> Void

    func measure(_ server: ServerUnderTest) async throws -> Measurement {
        switch parameters.scenario {
        case .relay, .durable, .burst: try await relay(server, longPoll: false)
        case .longpoll: try await relay(server, longPoll: true)
        case .fanout: try await fanout(server)
        case .idle: try await idle(server)
        case .churn: try await churn(server)
        case .storm: try await storm(server)
        case .media: throw BenchError("the media scenario runs in process (MediaBench), not against a server")
        }
    }

    // MARK: relay, durable, longpoll

    /// P pairs: sender i sends to receiver i (WebSocket, or long-poll).
    private func relay(_ server: ServerUnderTest, longPoll: Bool) async throws -> Measurement {
        let pairs = parameters.effectivePairs
        var users: [String] = []
        for pair in 0..<pairs { users += ["\(prefix)s\(pair)", "\(prefix)r\(pair)"] }
        let tokens = try await server.tokens(for: users)
        var specs: [ClientSpec] = []
        for pair in 0..<pairs {
            specs.append(ClientSpec(user: users[2 * pair], token: tokens[2 * pair], role: .sender, target: ClientFrames.address(user: users[2 * pair + 1])))
            specs.append(ClientSpec(user: users[2 * pair + 1], token: tokens[2 * pair + 1], role: .receiver))
        }
        let generator = try await GeneratorHandle.make(on: eventLoop, plan: plan(server), clients: specs)
        let senders = stride(from: 0, to: specs.count, by: 2).map { $0 }
        let receivers = stride(from: 1, to: specs.count, by: 2).map { $0 }
        return try await load(server, generator) {
            if longPoll {
                try await generator.future { $0.connect(senders) }
                try await generator.future { g in g.openLongPolls(receivers.map { g.clients[$0] }) }
            } else {
                try await generator.future { $0.connect(senders + receivers) }
            }
        }
    }

    // MARK: fanout

    /// G groups of S members; members 0 and 1 of each group send to it.
    private func fanout(_ server: ServerUnderTest) async throws -> Measurement {
        let groups = parameters.effectiveGroups
        let size = parameters.effectiveGroupSize
        var users: [String] = []
        for group in 0..<groups { for member in 0..<size { users.append("\(prefix)g\(group)m\(member)") } }
        let tokens = try await server.tokens(for: users)
        var specs: [ClientSpec] = []
        for group in 0..<groups {
            for member in 0..<size {
                let index = group * size + member
                let sends = member < BenchParameters.sendersPerGroup
                specs.append(ClientSpec(
                    user: users[index], token: tokens[index], role: sends ? .sender : .receiver,
                    target: sends ? ClientFrames.address(group: "\(prefix)grp\(group)") : nil))
            }
        }
        let generator = try await GeneratorHandle.make(on: eventLoop, plan: plan(server), clients: specs)
        try await createGroups(generator, groups: groups, size: size, users: users, tokens: tokens)
        let all = Array(0..<specs.count)
        return try await load(server, generator) {
            try await generator.future { $0.connect(all) }
        }
    }

    private func createGroups(_ generator: GeneratorHandle, groups: Int, size: Int, users: [String], tokens: [String]) async throws {
        let requests = (0..<groups).map { group -> (token: String, body: String) in
            let members = (1..<size).map { "\"\(users[group * size + $0])\"" }.joined(separator: ",")
            return (tokens[group * size], "{\"id\":\"\(prefix)grp\(group)\",\"name\":\"bench \(group)\",\"members\":[\(members)]}")
        }
        let statuses = try await generator.future { $0.post("/v1/groups", requests) }
        if let bad = statuses.first(where: { $0 != 201 }) {
            throw BenchError("creating a group answered HTTP \(bad)")
        }
    }

    // MARK: The measured phase shared by relay, fanout, longpoll and durable

    private func load(_ server: ServerUnderTest, _ generator: GeneratorHandle, connect: () async throws -> Void) async throws -> Measurement {
        do {
            try await connect()
            try await generator.run { g in
                g.startHeartbeats()
                g.startSending()
            }
            try await sleep(parameters.warmup)
            let server0 = server.sample()
            let self0 = ProcessSample.readSelf()
            let postgres0 = server.database?.server.cpuSeconds()
            try await generator.run { $0.beginMeasure() }
            try await sleep(parameters.duration)
            let snapshot = try await generator.run { $0.endMeasure() }
            let server1 = server.sample()
            let self1 = ProcessSample.readSelf()
            let postgres1 = server.database?.server.cpuSeconds()
            try await generator.run { $0.stopSending() }
            await finish(server, generator)

            var figures = Figures()
            figures["msgs_per_s"] = Double(snapshot.delivered) / snapshot.elapsedSeconds
            figures.setLatency(snapshot.endToEnd)
            figures.setLatency(snapshot.ack, prefix: "ack_")
            figures["sent_per_s"] = Double(snapshot.sent) / snapshot.elapsedSeconds
            addProcessFigures(&figures, server: (server0, server1), generator: (self0, self1))
            if let cpu = figures["server_cpu_pct"], snapshot.sent > 0 {
                // CPU seconds per second over sends per second: µs of server CPU per message sent.
                figures["server_cpu_us_per_msg"] = cpu / 100 * 1e6 / (Double(snapshot.sent) / snapshot.elapsedSeconds)
            }
            if let postgres0, let postgres1 {
                figures["postgres_cpu_pct"] = (postgres1 - postgres0) / snapshot.elapsedSeconds * 100
            }
            return Measurement(figures: figures, errors: snapshot.errors)
        } catch {
            _ = try? await generator.future { $0.closeAll() }
            throw error
        }
    }

    // MARK: idle

    /// N authenticated connections: RSS per connection, handshakes/s, idle CPU with heartbeats.
    private func idle(_ server: ServerUnderTest) async throws -> Measurement {
        let (count, capNote) = idleConnections()
        let users = (0..<count).map { "\(prefix)i\($0)" }
        let mintStart = MonotonicClock.nanos()
        let tokens = try await server.tokens(for: users)
        log(String(format: "minted %d tokens in %.1f s", count, Double(MonotonicClock.nanos() - mintStart) / 1e9))
        let specs = (0..<count).map { ClientSpec(user: users[$0], token: tokens[$0], role: .idle) }
        var plan = plan(server)
        plan.connectConcurrency = 128
        let generator = try await GeneratorHandle.make(on: eventLoop, plan: plan, clients: specs)
        do {
            // A first few connections bring lazily built state (pools, caches) into the
            // "before" figure, so it is not charged to the connections measured.
            let primer = min(100, max(1, count / 20))
            try await generator.future { $0.connect(Array(0..<primer)) }
            try await sleep(1)
            let before = server.child?.sample()
            let start = MonotonicClock.nanos()
            log("connecting \(count - primer) clients")
            try await generator.future { $0.connect(Array(primer..<count)) }
            let connectSeconds = Double(MonotonicClock.nanos() - start) / 1e9
            log(String(format: "connected in %.1f s", connectSeconds))
            try await sleep(2)
            let after = server.child?.sample()
            try await generator.run { g in
                g.startHeartbeats()
                g.beginMeasure()
            }
            let self0 = ProcessSample.readSelf()
            let server0 = server.sample()
            try await sleep(parameters.duration)
            let snapshot = try await generator.run { $0.endMeasure() }
            let server1 = server.sample()
            let self1 = ProcessSample.readSelf()
            await finish(server, generator)

            var figures = Figures()
            figures["msgs_per_s"] = Double(snapshot.ping.count) / snapshot.elapsedSeconds
            figures.setLatency(snapshot.ping)
            figures["connections"] = Double(count)
            if let before, let after {
                figures["rss_per_conn_bytes"] = Double(after.rssBytes - before.rssBytes) / Double(count - primer)
            } else {
                figures["rss_per_conn_bytes"] = nil
            }
            figures["handshakes_per_s"] = Double(count - primer) / connectSeconds
            figures["heartbeats_per_s"] = figures["msgs_per_s"]
            addProcessFigures(&figures, server: (server0, server1), generator: (self0, self1))
            var notes = ["idle: msgs_per_s and p50/p99/p99.9 are heartbeats (ping → pong round trips); server CPU is while idle"]
            if let capNote { notes.append(capNote) }
            return Measurement(figures: figures, errors: snapshot.errors, notes: notes)
        } catch {
            _ = try? await generator.future { $0.closeAll() }
            throw error
        }
    }

    /// The connections `idle` and `storm` open: as asked, capped by the open-files limit (each of
    /// the generator and the server holds one descriptor per connection).
    func idleConnections() -> (Int, String?) {
        let asked = parameters.effectiveConnections
        let limit = MachineInfo.openFilesLimit() - 200
        guard asked > limit else { return (asked, nil) }
        return (limit, "connections capped at \(limit) by the open-files limit (ulimit -n \(limit + 200), minus 200 for other descriptors)")
    }

    // MARK: churn

    /// Connections open at once in `churn`.
    static func churnWave(_ total: Int) -> Int { min(500, total) }

    /// Waves before the "before" figure, for `total` measured connections: as many again. The
    /// working set (the allocator's arenas for the cooperative pool's threads, NIO's pooled
    /// buffers, SQLite's page cache) grows over the first tens of thousands of connections and
    /// then stays (measured: +2.2 MB from 10,000 to 90,000 closed connections, then nothing over
    /// the next 30,000), so the figure is taken over the second half of the churn.
    static func churnWarmupWaves(_ total: Int) -> Int { max(2, (total + churnWave(total) - 1) / churnWave(total)) }

    /// `connections` authenticated WebSocket sessions opened (`hello` read) and closed, a wave at
    /// a time, after two waves that bring pools and caches into the "before" figure. A server
    /// that releases everything a closed connection held shows no growth beyond allocator noise.
    private func churn(_ server: ServerUnderTest) async throws -> Measurement {
        let total = parameters.effectiveConnections
        let wave = Self.churnWave(total)
        let users = (0..<wave).map { "\(prefix)c\($0)" }
        let tokens = try await server.tokens(for: users)
        // One client per connection to be made, `wave` users among them: each wave connects
        // from other source addresses (the generator gives each thousand clients their own), so
        // the closed connections' TIME_WAIT ports never run out.
        let warmupWaves = Self.churnWarmupWaves(total)
        let rounds = warmupWaves + (total + wave - 1) / wave
        let specs = (0..<(rounds * wave)).map { ClientSpec(user: users[$0 % wave], token: tokens[$0 % wave], role: .idle) }
        var plan = plan(server)
        plan.connectConcurrency = 64
        let generator = try await GeneratorHandle.make(on: eventLoop, plan: plan, clients: specs)
        var round = 0
        func nextWave() -> [Int] {
            defer { round += 1 }
            return Array((round * wave)..<((round + 1) * wave))
        }
        do {
            for _ in 0..<warmupWaves {
                let clients = nextWave()
                try await generator.future { $0.connect(clients) }
                try await generator.future { $0.closeAll() }
            }
            try await sleep(1)
            let before = server.child?.sample()
            let start = MonotonicClock.nanos()
            var closed = 0
            while closed < total {
                let clients = nextWave()
                try await generator.future { $0.connect(clients) }
                try await generator.future { $0.closeAll() }
                closed += wave
            }
            let seconds = Double(MonotonicClock.nanos() - start) / 1e9
            log(String(format: "%d connections opened and closed in %.1f s", closed, seconds))
            // The server's side of the last closes runs right after the client's.
            try await sleep(1)
            let after = server.child?.sample()
            await finish(server, generator)
            var figures = Figures()
            figures["connections"] = Double(closed)
            figures["connects_per_s"] = Double(closed) / seconds
            if let before, let after {
                figures["rss_growth_per_1000_closed_bytes"] = Double(after.rssBytes - before.rssBytes) / Double(closed) * 1000
                figures["server_rss_bytes"] = Double(after.rssBytes)
            } else {
                figures["rss_growth_per_1000_closed_bytes"] = nil
            }
            return Measurement(
                figures: figures,
                notes: ["churn: \(wave) connections at a time; RSS growth over \(closed) closed connections after \(warmupWaves * wave) others (warm-up)"])
        } catch {
            _ = try? await generator.future { $0.closeAll() }
            throw error
        }
    }

    // MARK: storm

    /// N clients in pairs with light traffic; the server restarts; all reconnect with jittered
    /// backoff, `sync` from their last seq and resend what was never acked.
    private func storm(_ server: ServerUnderTest) async throws -> Measurement {
        let (count, capNote) = idleConnections()
        let pairs = count / 2
        var users: [String] = []
        for pair in 0..<pairs { users += ["\(prefix)s\(pair)", "\(prefix)r\(pair)"] }
        log("minting \(users.count) tokens")
        let tokens = try await server.tokens(for: users)
        var specs: [ClientSpec] = []
        for pair in 0..<pairs {
            specs.append(ClientSpec(user: users[2 * pair], token: tokens[2 * pair], role: .sender, target: ClientFrames.address(user: users[2 * pair + 1])))
            specs.append(ClientSpec(user: users[2 * pair + 1], token: tokens[2 * pair + 1], role: .receiver, peer: 2 * pair))
        }
        var plan = plan(server)
        plan.reconnect = true
        plan.tracking = true
        plan.connectConcurrency = 512
        let generator = try await GeneratorHandle.make(on: eventLoop, plan: plan, clients: specs)
        do {
            log("connecting \(specs.count) clients")
            let connectStart = MonotonicClock.nanos()
            let all = Array(0..<specs.count)
            try await generator.future { $0.connect(all) }
            let connectSeconds = Double(MonotonicClock.nanos() - connectStart) / 1e9
            try await generator.run { g in
                g.startHeartbeats()
                g.startSending()
            }
            try await sleep(max(1, parameters.warmup))
            let self0 = ProcessSample.readSelf()
            try await generator.run { $0.beginMeasure() }
            let killedAt = MonotonicClock.nanos()
            log("restarting \(server.kind.label) with \(specs.count) clients connected")
            let onStopped: @Sendable () async -> Void = { _ = try? await generator.run { $0.startEpoch() } }
            let restart: (seconds: Double, killed: Bool)
            if case .baseline = server.kind {
                restart = try await server.restartBaseline(onStopped: onStopped)
            } else {
                restart = try await server.restart(onStopped: onStopped)
            }
            let server0 = server.sample()
            let deadline = killedAt + 120_000_000_000
            var allBack: UInt64?
            while allBack == nil, MonotonicClock.nanos() < deadline {
                try await sleep(0.02)
                allBack = try await generator.run { $0.allBackAt }
            }
            let back = try await generator.run { $0.backInEpoch }
            log(allBack == nil ? "only \(back) of \(specs.count) clients back after 120 s" : "all \(specs.count) clients back")
            // Traffic goes on a moment after recovery, then the outboxes drain.
            try await sleep(1)
            try await generator.run { $0.stopSending() }
            let drainDeadline = MonotonicClock.nanos() + 30_000_000_000
            while try await generator.run({ $0.unackedTotal }) > 0, MonotonicClock.nanos() < drainDeadline {
                try await sleep(0.05)
            }
            let synced: Bool
            do {
                try await generator.future { $0.finalSync() }
                synced = true
            } catch {
                synced = false
            }
            let snapshot = try await generator.run { $0.endMeasure() }
            let loss = try await generator.run { $0.lossReport() }
            let server1 = server.sample()
            let self1 = ProcessSample.readSelf()
            await finish(server, generator)

            var figures = Figures()
            figures["msgs_per_s"] = Double(snapshot.delivered) / snapshot.elapsedSeconds
            figures.setLatency(snapshot.endToEnd)
            figures.setLatency(snapshot.ack, prefix: "ack_")
            figures["connections"] = Double(specs.count)
            figures["handshakes_per_s"] = Double(specs.count) / connectSeconds
            figures["recovery_s"] = allBack.map { Double($0 - killedAt) / 1e9 }
            figures["restart_s"] = restart.seconds
            figures["acked"] = Double(loss.acked)
            figures["lost"] = Double(loss.lost)
            figures["unacked"] = Double(loss.unacked)
            addProcessFigures(&figures, server: (server0, server1), generator: (self0, self1))
            var notes = [
                "storm: recovery_s runs from SIGTERM until every client has its hello from the new server and a complete sync; "
                    + "msgs_per_s and latencies cover that window and the drain after it"
            ]
            if restart.killed {
                notes.append("storm (\(server.kind.label)): the server had not exited 10 s after SIGTERM and was killed (SIGKILL)")
            }
            if !synced { notes.append("storm (\(server.kind.label)): the final sync did not complete; lost may be overstated") }
            if allBack == nil { notes.append("storm (\(server.kind.label)): only \(back) of \(specs.count) clients were back after 120 s") }
            if let capNote { notes.append(capNote) }
            return Measurement(figures: figures, errors: snapshot.errors, notes: notes)
        } catch {
            _ = try? await generator.future { $0.closeAll() }
            throw error
        }
    }

    // MARK: Helpers

    /// Stops the server before the clients close (see `LoadGenerator.quiesce`); a `--url`
    /// gateway is left running.
    private func finish(_ server: ServerUnderTest, _ generator: GeneratorHandle) async {
        _ = try? await generator.run { $0.quiesce() }
        if server.child != nil { await server.stop() }
        _ = try? await generator.future { $0.closeAll() }
    }

    private func plan(_ server: ServerUnderTest) -> LoadPlan {
        var plan = LoadPlan(target: server.target)
        if server.targets.count > 1 { plan.nodes = server.targets }
        plan.window = parameters.effectiveWindow
        plan.rate = parameters.effectiveRate
        if parameters.scenario == .burst { plan.burstIntervalMs = BenchParameters.burstIntervalMs }
        plan.bodyBytes = parameters.bodyBytes
        return plan
    }

    private func addProcessFigures(
        _ figures: inout Figures, server: (ProcessSample?, ProcessSample?), generator: (ProcessSample?, ProcessSample?)
    ) {
        if let start = server.0, let end = server.1 {
            figures["server_cpu_pct"] = ProcessSample.cpuPercent(from: start, to: end)
            figures["server_rss_bytes"] = Double(end.rssBytes)
        } else {
            figures["server_cpu_pct"] = nil
            figures["server_rss_bytes"] = nil
        }
        if let start = generator.0, let end = generator.1 {
            figures["generator_cpu_pct"] = ProcessSample.cpuPercent(from: start, to: end)
        }
    }

    private func sleep(_ seconds: Double) async throws {
        guard seconds > 0 else { return }
        try await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
    }
}
