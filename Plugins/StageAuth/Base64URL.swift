/// Base64 decoding for token segments and raw keys.
///
/// Our own decoder, rather than Foundation's, so the token's header and claims are read exactly
/// as the checks in `AuthStage` expect: both alphabets (`-_` and `+/`), optional `=` padding at
/// the end only, nothing else (no whitespace, no line breaks).
enum Base64URL {
    /// The decoded bytes, or nil when `text` is not valid base64 or base64url.
    static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        var output: [UInt8] = []
        output.reserveCapacity(text.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        var padding = 0
        var count = 0
        for byte in text {
            if byte == UInt8(ascii: "=") {
                padding += 1
                continue
            }
            // Nothing may follow padding.
            guard padding == 0, let value = sextet(byte) else { return nil }
            accumulator = (accumulator << 6) | UInt32(value)
            bits += 6
            count += 1
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        // One character left over carries only 6 bits: not a whole byte, so not base64.
        guard count % 4 != 1, padding <= 2, padding == 0 || (count + padding) % 4 == 0 else { return nil }
        return output
    }

    /// base64url without padding, the form JWK members and jwt-kit use.
    static func encode(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        for start in stride(from: 0, to: bytes.count, by: 3) {
            let chunk = bytes[start..<min(start + 3, bytes.count)]
            var group: UInt32 = 0
            for (offset, byte) in chunk.enumerated() { group |= UInt32(byte) << UInt32(16 - 8 * offset) }
            for shift in [18, 12, 6, 0].prefix(chunk.count + 1) {
                out.append(alphabet[Int((group >> UInt32(shift)) & 0x3F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func sextet(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"), UInt8(ascii: "+"): 62
        case UInt8(ascii: "_"), UInt8(ascii: "/"): 63
        default: nil
        }
    }

    /// Whether an unpadded base64url text is the one encoding of its bytes: a length that is not
    /// 1 mod 4, and zero in the bits of the last character that carry no data. Without this, a
    /// signature could be rewritten as several different texts that all verify.
    static func isCanonical(_ text: some BidirectionalCollection<UInt8>) -> Bool {
        guard let last = text.last, let value = sextet(last) else { return text.isEmpty }
        switch text.count % 4 {
        case 1: return false
        case 2: return value & 0x0F == 0
        case 3: return value & 0x03 == 0
        default: return true
        }
    }

    /// Whether `byte` may appear in a compact JWT (the base64url alphabet or the `.` separator).
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
            true
        default:
            false
        }
    }
}
