/// Maps kind names to factories. Built in the executable, in one place.
public struct StageRegistry: Sendable {
    /// A second registration of a kind.
    public struct DuplicateKindError: Error, CustomStringConvertible {
        public let kind: String
        public var description: String { "stage kind '\(kind)' is registered twice" }
    }

    /// A kind that is neither built in (short, no dot) nor owner-prefixed (`acme.profanity`).
    public struct InvalidKindError: Error, CustomStringConvertible {
        public let kind: String
        public var description: String {
            "stage kind '\(kind)' is not valid: use lowercase letters, digits and '_', with a dotted owner prefix for custom stages (acme.profanity)"
        }
    }

    private var factories: [String: StageFactory] = [:]

    public init() {}

    public init(_ factories: [StageFactory]) throws {
        for factory in factories { try register(factory) }
    }

    public mutating func register(_ factory: StageFactory) throws {
        guard Self.isValidKind(factory.kind) else { throw InvalidKindError(kind: factory.kind) }
        guard factories[factory.kind] == nil else { throw DuplicateKindError(kind: factory.kind) }
        factories[factory.kind] = factory
    }

    public func factory(for kind: String) -> StageFactory? { factories[kind] }

    public var kinds: [String] { factories.keys.sorted() }

    /// The kinds whose stages provide `role`, sorted (for messages that suggest one).
    public func kinds(providing role: StageRole) -> [String] {
        factories.values.filter { $0.provides.contains(role) }.map(\.kind).sorted()
    }

    static func isValidKind(_ kind: String) -> Bool {
        let parts = kind.split(separator: ".", omittingEmptySubsequences: false)
        guard !parts.isEmpty, parts.count <= 4 else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F || $0 == 0x2D }
        }
    }
}
