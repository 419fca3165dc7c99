import Foundation

/// What a file's first bytes say it is (magic numbers), and what the media service does with
/// each kind: which types it thumbnails, which it leaves uncompressed, which a browser could
/// execute.
public enum ContentSniffer {
    /// The content type the bytes prove, or nil when no known signature matches.
    public static func detect(_ head: [UInt8]) -> String? {
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            head.count >= offset + magic.count && Array(head[offset..<offset + magic.count]) == magic
        }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "image/png" }
        if starts([0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if starts(Array("GIF87a".utf8)) || starts(Array("GIF89a".utf8)) { return "image/gif" }
        if starts(Array("RIFF".utf8)) && starts(Array("WEBP".utf8), at: 8) { return "image/webp" }
        if starts(Array("RIFF".utf8)) && starts(Array("WAVE".utf8), at: 8) { return "audio/wav" }
        if starts(Array("ftyp".utf8), at: 4) { return "video/mp4" }
        if starts(Array("ID3".utf8)) || starts([0xFF, 0xFB]) || starts([0xFF, 0xF3]) || starts([0xFF, 0xF2]) { return "audio/mpeg" }
        if starts(Array("OggS".utf8)) { return "audio/ogg" }
        if starts([0x1A, 0x45, 0xDF, 0xA3]) { return "video/webm" }
        if starts([0x50, 0x4B, 0x03, 0x04]) || starts([0x50, 0x4B, 0x05, 0x06]) { return "application/zip" }
        if starts([0x1F, 0x8B]) { return "application/gzip" }
        if starts([0x28, 0xB5, 0x2F, 0xFD]) { return "application/zstd" }
        if starts(Array("%PDF-".utf8)) { return "application/pdf" }
        if looksLikeMarkup(head) { return "text/html" }
        return nil
    }

    /// HTML, SVG or XML at the start (after whitespace and a BOM), as browsers sniff it.
    static func looksLikeMarkup(_ head: [UInt8]) -> Bool {
        var bytes = head[...]
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        bytes = bytes.drop { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || $0 == 0x0C }
        let text = String(decoding: bytes.prefix(64), as: UTF8.self).lowercased()
        let tags = ["<!doctype html", "<html", "<head", "<script", "<iframe", "<body", "<svg", "<?xml", "<!--", "<h1", "<div", "<a ", "<img", "<style", "<title", "<table", "<p>", "<br", "<b>", "<font"]
        return tags.contains { text.hasPrefix($0) }
    }

    /// Images the service thumbnails.
    public static let images: Set<String> = ["image/png", "image/jpeg", "image/gif", "image/webp"]

    /// Formats that are compressed already: stored as they are.
    public static let compressed: Set<String> = [
        "image/png", "image/jpeg", "image/gif", "image/webp", "video/mp4", "video/webm", "audio/mpeg", "audio/ogg", "audio/mp4",
        "application/zip", "application/gzip", "application/x-gzip", "application/zstd", "application/pdf",
    ]

    /// Types zstd is always worth it for (kept compressed whenever smaller).
    public static func isCompressible(_ type: String) -> Bool {
        type.hasPrefix("text/") || ["application/json", "application/xml", "application/javascript", "application/x-ndjson", "image/svg+xml", "image/bmp", "audio/wav"].contains(type)
    }

    /// Types a browser shows inline without running anything (with `nosniff`); everything else
    /// is served as `Content-Disposition: attachment`.
    public static func isInlineSafe(_ type: String) -> Bool {
        images.contains(type) || type.hasPrefix("audio/") || type.hasPrefix("video/") || type == "text/plain"
    }

    /// The type to store and serve for a declared type and the sniffed one: the declared type
    /// when the bytes agree (or prove nothing contrary), `application/octet-stream` otherwise:
    /// markup never travels under an image type, an image never under a markup type.
    public static func servedType(declared: String, detected: String?) -> String {
        if let detected {
            if detected == declared { return declared }
            if detected == "audio/mpeg" && declared == "audio/mp3" { return declared }
            if detected == "video/mp4" && ["audio/mp4", "video/quicktime", "audio/x-m4a", "audio/m4a"].contains(declared) { return declared }
            if detected == "text/html" {
                // Markup is fine declared as markup or plain text (served as an attachment or inert).
                return declared.hasPrefix("text/") || declared.hasSuffix("+xml") || declared.hasSuffix("/xml") ? declared : "application/octet-stream"
            }
            if detected == "application/zip", declared.hasPrefix("application/vnd.") || declared == "application/java-archive" || declared == "application/epub+zip" {
                return declared
            }
            return "application/octet-stream"
        }
        // No signature: a type that has one (an image, say) is a lie.
        let signed: Set<String> = images.union(["application/pdf", "application/zip", "application/gzip", "application/zstd", "video/mp4", "audio/ogg"])
        return signed.contains(declared) ? "application/octet-stream" : declared
    }

    /// A declared `Content-Type` reduced to `type/subtype`, lowercased; nil when malformed.
    public static func normalize(_ header: String) -> String? {
        let main = header.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        let lower = main.lowercased()
        let parts = lower.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, lower.utf8.count <= 127 else { return nil }
        let token: (Substring) -> Bool = { part in
            !part.isEmpty && part.utf8.allSatisfy { b in
                (0x61...0x7A).contains(b) || (0x30...0x39).contains(b) || "!#$&^_.+-".utf8.contains(b)
            }
        }
        return token(parts[0]) && token(parts[1]) ? lower : nil
    }
}
