import GatewayCore
import StageAuth
import StageFanout
import StageID
import StageMedia
import StagePersist
import StagePush
import StageRateLimit
import StageWebhook
import StageWordFilter

/// Every stage kind this binary knows, sorted by kind. Add a custom stage's factory here.
enum BuiltInStages {
    static let factories: [StageFactory] = [
        AuthStageFactory.factory,  // auth
        WordFilterStage.factory,  // example.wordfilter
        FanoutStage.factory,  // fanout
        IDStage.factory,  // id
        MediaStage.factory,  // media
        PersistStage.factory,  // persist
        PushStage.factory,  // push
        RateLimitStage.factory,  // ratelimit
        WebhookStage.factory,  // webhook
    ]

    static func registry() throws -> StageRegistry {
        try StageRegistry(factories)
    }
}
