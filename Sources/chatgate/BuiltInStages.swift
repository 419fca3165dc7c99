import GatewayCore
import StageAuth
import StageFanout
import StageID
import StageMedia
import StagePersist
import StagePush
import StageRateLimit
import StageWebhook

/// The stage kinds the project ships (short names, no owner prefix), sorted by kind. Custom
/// stages, the example `example.wordfilter` among them, are registered in `CustomStages`.
enum BuiltInStages {
    static let builtIn: [StageFactory] = [
        AuthStageFactory.factory,  // auth
        FanoutStage.factory,  // fanout
        IDStage.factory,  // id
        MediaStage.factory,  // media
        PersistStage.factory,  // persist
        PushStage.factory,  // push
        RateLimitStage.factory,  // ratelimit
        WebhookStage.factory,  // webhook
    ]

    /// Every kind this binary knows: the built-in ones, then `CustomStages.factories`.
    static var factories: [StageFactory] { builtIn + CustomStages.factories }

    static func registry() throws -> StageRegistry {
        try StageRegistry(factories)
    }
}
