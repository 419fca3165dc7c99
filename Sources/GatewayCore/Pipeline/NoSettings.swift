/// No settings: for stages that take none (`id` on a node with defaults, say).
public struct NoSettings: Codable, Sendable {
    public init() {}
}
