import GatewayCore

/// `check-config` builds the `push` stage too, which needs push stores: empty ones.
extension NoStore: DeviceStore, PushQueue {
    func registerTarget(_ target: PushTarget, maxPerUser: Int) async throws -> (target: PushTarget, created: Bool) {
        throw GatewayError.unavailable("no store")
    }
    func targets(of user: String) async throws -> [PushTarget] { [] }
    func target(id: String) async throws -> PushTarget? { nil }
    func removeTarget(id: String, user: String?) async throws -> Bool { false }
    func enqueue(_ items: [PushQueueItem], collapseMs: Int64, maxListed: Int) async throws { throw GatewayError.unavailable("no store") }
    func claimDue(now: Int64, limit: Int, leaseMs: Int64) async throws -> [PushJob] { [] }
    func complete(_ id: Int64) async throws {}
    func reschedule(_ id: Int64, due: Int64, attempts: Int) async throws {}
    func cancel(user: String, confirmation: PushConfirmation, now: Int64) async throws -> Int { 0 }
    func nextDue() async throws -> Int64? { nil }
    func queuedCount() async throws -> Int { 0 }
}
