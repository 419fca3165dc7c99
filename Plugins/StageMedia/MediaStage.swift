import Foundation
import GatewayCore
import NIOCore

/// The `media` stage: turns a `send`'s `attachments` into media references every recipient
/// can download (PROTOCOL.md §6, docs/MEDIA.md).
///
/// - An inline item `{content_type, data (base64), name?}` of at most `media.inline_max_bytes`
///   decoded bytes is stored in the media store (compressed, thumbnailed) and replaced.
/// - A reference `{media_id}` must name an existing upload of the sender.
/// - Every item is delivered as `{media_id, content_type, size, name?, url}`, plus `width`,
///   `height`, `thumbnail_url` for images; at most 10 items.
/// - The conversation is recorded for every media id, so its members may read them. This
///   happens before the message is committed, so a recipient never holds a message whose media
///   it may not read yet; a message refused by a later stage leaves them readable by the
///   conversation's members, with whom the sender chose to share them.
///
/// Takes no settings: the limits are the gateway's `media:` section. Place it after `auth`
/// and before `persist`.
public struct MediaStage: Stage {
    public static let maxAttachments = 10

    public init() {}

    public func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
        guard envelope.kind == .send, let items = envelope.attachments, !items.isEmpty, let to = envelope.to else { return .continue }
        guard let media = context.stores.media else {
            return .reject(GatewayError.unavailable("this gateway does not accept attachments (no media store)"))
        }
        guard items.count <= Self.maxAttachments else {
            return .reject(.badFrame("at most \(Self.maxAttachments) attachments (was \(items.count))"))
        }
        let user = envelope.sender.user
        var delivered: [JSONValue] = []
        var ids: [String] = []
        for (index, item) in items.enumerated() {
            guard case .object(let object) = item else { return .reject(.badFrame("attachments[\(index)] must be an object")) }
            let record: MediaRecord
            if let reference = object["media_id"] {
                guard let id = reference.stringValue, MediaRecord.isValidID(id) else {
                    return .reject(.badFrame("attachments[\(index)].media_id is not a media id"))
                }
                guard let found = try await media.record(id), found.originalID == nil else {
                    return .reject(.notFound("attachments[\(index)]: no media \(id)"))
                }
                guard found.uploader == user else {
                    return .reject(.forbidden("attachments[\(index)]: media \(id) was uploaded by someone else"))
                }
                record = found
            } else {
                guard let type = object["content_type"]?.stringValue else {
                    return .reject(.badFrame("attachments[\(index)] needs 'media_id', or 'content_type' and 'data'"))
                }
                guard let text = object["data"]?.stringValue else { return .reject(.badFrame("attachments[\(index)].data must be a base64 string")) }
                // Base64 is 4 characters per 3 bytes: refuse before decoding what cannot fit.
                guard text.utf8.count <= (media.inlineMaxBytes + 2) / 3 * 4 + 4 else {
                    return .reject(GatewayError(.tooLarge, "attachments[\(index)] is larger than media.inline_max_bytes (\(media.inlineMaxBytes)); upload it with POST /v1/media"))
                }
                guard let data = Data(base64Encoded: text) else { return .reject(.badFrame("attachments[\(index)].data is not valid base64")) }
                guard data.count <= media.inlineMaxBytes else {
                    return .reject(GatewayError(.tooLarge, "attachments[\(index)] is larger than media.inline_max_bytes (\(media.inlineMaxBytes))"))
                }
                var name: String?
                if let value = object["name"], !value.isNull {
                    guard let given = value.stringValue, Self.isValidName(given) else {
                        return .reject(.badFrame("attachments[\(index)].name must be 1 to 255 characters without control characters"))
                    }
                    name = given
                }
                do {
                    record = try await media.store(
                        MediaByteStream(ByteBuffer(bytes: data)), declaredLength: Int64(data.count), contentType: type, name: name, uploader: user)
                } catch let error as GatewayError {
                    return .reject(GatewayError(error.code, "attachments[\(index)]: \(error.message)"))
                }
            }
            ids.append(record.id)
            delivered.append(media.attachment(record))
        }
        try await media.recordSent(ids, conversation: to.conversationKey(sender: user))
        envelope.attachments = delivered
        return .continue
    }

    /// 1 to 255 characters, no control characters, no path separators.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 255 && !name.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || $0 == "/" || $0 == "\\" }
    }

    public static let factory = StageFactory(kind: "media", settings: NoSettings.self) { _, _ in MediaStage() }
}
