/// What a stage decides about an envelope.
public enum StageOutcome: Sendable {
    /// Pass the (possibly changed) envelope to the next stage.
    case `continue`
    /// Stop here and answer the sender with this error; nothing is stored.
    case reject(GatewayError)
    /// Stop here and answer the sender with this frame instead of the usual reply.
    case reply(JSONObject)
}
