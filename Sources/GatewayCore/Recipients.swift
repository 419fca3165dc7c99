/// Who a conversation's messages go to.
public enum Recipients {
    /// The users whose inbox a message to `to` from `sender` lands in: the sender and the peer
    /// for 1:1 (once when they are the same), or every member of the group (the sender
    /// included). Throws `forbidden` when the sender is not a member, and for a group that does
    /// not exist too, so that a group's existence does not leak.
    public static func resolve(to: Address, sender: String, groups: any GroupStore) async throws -> [String] {
        switch to {
        case .user(let peer):
            return peer == sender ? [sender] : [sender, peer]
        case .group(let id):
            guard let members = try await groups.members(of: id) else {
                throw GatewayError.forbidden("not a member of group '\(id)'")
            }
            guard members.contains(sender) else { throw GatewayError.forbidden("not a member of group '\(id)'") }
            return members
        }
    }
}
