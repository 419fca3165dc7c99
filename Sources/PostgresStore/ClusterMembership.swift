import GatewayCore
import Logging

/// How a node joins the cluster at start: it registers in `cluster_nodes` and leases its
/// Snowflake worker id (`node.worker_id`, or the lowest free one with `auto`).
public enum ClusterMembership {
    /// Takes this node's lease; returns it (renewed by running it as a service).
    ///
    /// A fixed worker id still leased by this same node id (the node restarted after a crash,
    /// its old lease has not run out) is waited for, at most one lease; a worker id leased by
    /// another node fails the start with `conflict`.
    public static func join(
        _ store: PostgresStore, configuration: GatewayConfiguration, hub: SessionHub, clock: any GatewayClock, logger: Logger
    ) async throws -> NodeLease {
        let listen = configuration.listen.public
        let host = listen.host == "0.0.0.0" ? "127.0.0.1" : listen.host
        let (ws, http) = configuration.tls == nil ? ("ws", "http") : ("wss", "https")
        let identity = NodeLease.Identity(
            nodeID: configuration.node.id, wsURL: "\(ws)://\(host):\(listen.port)/v1/ws", longpollURL: "\(http)://\(host):\(listen.port)/v1/lp",
            maxSessions: configuration.limits.maxConnections)
        let lease = NodeLease(
            store: store, node: identity, leaseMs: Int64(configuration.node.leaseMs), clock: clock, logger: logger,
            sessions: { hub.connectionCount })
        let worker = configuration.node.workerIDAuto ? nil : configuration.node.workerID
        let deadline = ContinuousClock.now + .milliseconds(configuration.node.leaseMs + 1000)
        while true {
            do {
                try await lease.acquire(worker: worker)
                return lease
            } catch let error as GatewayError where error.code == .conflict {
                guard let worker, ContinuousClock.now < deadline else { throw error }
                // nil: the lease ran out between the two reads; acquiring it again may succeed now.
                let holder = try await lease.holder(of: worker)
                guard holder == nil || holder == configuration.node.id else { throw error }
                if holder == nil { continue }
                logger.warning(
                    "worker id \(worker) is still leased by an earlier run of node '\(configuration.node.id)'; waiting for the lease to run out")
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}
