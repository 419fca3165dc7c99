import GatewayCore
import StageAuth
import StageFanout
import StageID
import StagePersist

/// Every stage kind this binary knows, sorted by kind. Add a custom stage's factory here.
enum BuiltInStages {
    static let factories: [StageFactory] = [
        AuthStageFactory.factory,  // auth
        FanoutStage.factory,  // fanout
        IDStage.factory,  // id
        PersistStage.factory,  // persist
    ]

    static func registry() throws -> StageRegistry {
        try StageRegistry(factories)
    }
}
