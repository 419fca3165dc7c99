/// Which users have a live session (on this node).
public protocol PresenceQuery: Sendable {
    func isOnline(_ user: String) -> Bool
}
