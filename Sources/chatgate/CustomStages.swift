import GatewayCore
import StageWordFilter

/// The custom stages compiled into this binary (kinds with a dotted owner prefix,
/// docs/STAGES.md): the project's example and yours, sorted by kind. Add a custom stage's
/// factory here; the built-in kinds are in `BuiltInStages`.
enum CustomStages {
    static let factories: [StageFactory] = [
        WordFilterStage.factory,  // example.wordfilter
    ]
}
