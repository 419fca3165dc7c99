import Crypto
import Foundation
import GatewayCore

/// RFC 8291 message encryption for Web Push: `aes128gcm` (RFC 8188) with a key derived from an
/// ECDH P-256 agreement with the browser's `p256dh` key and its `auth` secret.
enum WebPushEncryption {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The record size written in the header; the whole payload is one record.
    static let recordSize: UInt32 = 4096

    /// Encrypts `plaintext` for a subscription, with a fresh ephemeral key and salt.
    static func encrypt(_ plaintext: [UInt8], p256dh: [UInt8], auth: [UInt8]) throws -> [UInt8] {
        var salt = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for i in salt.indices { salt[i] = UInt8.random(in: 0...255, using: &generator) }
        return try encrypt(plaintext, p256dh: p256dh, auth: auth, ephemeral: P256.KeyAgreement.PrivateKey(), salt: salt)
    }

    /// Encrypts with a given ephemeral key and salt (RFC 8291 Appendix A fixes both).
    ///
    /// The body is the RFC 8188 header (salt, record size, key id = the ephemeral public key)
    /// followed by one record: AES-128-GCM of the plaintext and the last-record delimiter 0x02.
    static func encrypt(_ plaintext: [UInt8], p256dh: [UInt8], auth: [UInt8], ephemeral: P256.KeyAgreement.PrivateKey, salt: [UInt8]) throws -> [UInt8] {
        guard salt.count == 16 else { throw Failure(description: "salt must be 16 bytes") }
        guard auth.count == 16 else { throw Failure(description: "auth secret must be 16 bytes") }
        guard plaintext.count + 1 + 16 <= Int(recordSize) else { throw Failure(description: "payload of \(plaintext.count) bytes does not fit one record") }
        let uaPublic: P256.KeyAgreement.PublicKey
        do {
            uaPublic = try P256.KeyAgreement.PublicKey(x963Representation: p256dh)
        } catch {
            throw Failure(description: "p256dh is not a P-256 point")
        }
        let asPublic = Array(ephemeral.publicKey.x963Representation)
        let shared = try ephemeral.sharedSecretFromKeyAgreement(with: uaPublic)
        // IKM = HKDF(salt: auth, ikm: ecdh_secret, info: "WebPush: info" 0x00 ua_public as_public, 32)
        let keyInfo = Array("WebPush: info".utf8) + [0] + p256dh + asPublic
        let ikm = shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: auth, sharedInfo: keyInfo, outputByteCount: 32)
        let cek = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: ikm, salt: salt, info: Array("Content-Encoding: aes128gcm".utf8) + [0], outputByteCount: 16)
        let nonceKey = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: ikm, salt: salt, info: Array("Content-Encoding: nonce".utf8) + [0], outputByteCount: 12)
        let nonce = try AES.GCM.Nonce(data: nonceKey.withUnsafeBytes { Array($0) })
        let sealed = try AES.GCM.seal(plaintext + [2], using: cek, nonce: nonce)
        var body = salt
        body += [UInt8(recordSize >> 24 & 0xFF), UInt8(recordSize >> 16 & 0xFF), UInt8(recordSize >> 8 & 0xFF), UInt8(recordSize & 0xFF)]
        body.append(UInt8(asPublic.count))
        body += asPublic
        body += Array(sealed.ciphertext) + Array(sealed.tag)
        return body
    }

    /// Decrypts an `aes128gcm` body of one record with the subscription's private key (what a
    /// browser does; tests use it as the receiving side).
    static func decrypt(_ body: [UInt8], privateKey: P256.KeyAgreement.PrivateKey, auth: [UInt8]) throws -> [UInt8] {
        guard body.count > 21 else { throw Failure(description: "body too short") }
        let salt = Array(body[0..<16])
        let idLength = Int(body[20])
        guard body.count > 21 + idLength + 16 else { throw Failure(description: "body too short") }
        let asPublicBytes = Array(body[21..<(21 + idLength)])
        let asPublic = try P256.KeyAgreement.PublicKey(x963Representation: asPublicBytes)
        let shared = try privateKey.sharedSecretFromKeyAgreement(with: asPublic)
        let uaPublic = Array(privateKey.publicKey.x963Representation)
        let keyInfo = Array("WebPush: info".utf8) + [0] + uaPublic + asPublicBytes
        let ikm = shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: auth, sharedInfo: keyInfo, outputByteCount: 32)
        let cek = HKDF<SHA256>.deriveKey(inputKeyMaterial: ikm, salt: salt, info: Array("Content-Encoding: aes128gcm".utf8) + [0], outputByteCount: 16)
        let nonceKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: ikm, salt: salt, info: Array("Content-Encoding: nonce".utf8) + [0], outputByteCount: 12)
        let record = Array(body[(21 + idLength)...])
        let box = try AES.GCM.SealedBox(
            nonce: AES.GCM.Nonce(data: nonceKey.withUnsafeBytes { Array($0) }), ciphertext: record.dropLast(16), tag: record.suffix(16))
        var plain = Array(try AES.GCM.open(box, using: cek))
        while plain.last == 0 { plain.removeLast() }
        guard plain.last == 2 else { throw Failure(description: "not a last record") }
        plain.removeLast()
        return plain
    }
}

/// An ES256 JSON Web Token signed with swift-crypto (VAPID and the APNs provider token).
enum ES256Token {
    static func make(header: JSONObject, claims: JSONObject, key: P256.Signing.PrivateKey) throws -> String {
        let signingInput = Base64URLCoder.encode(JSONValue.object(header).jsonBytes) + "." + Base64URLCoder.encode(JSONValue.object(claims).jsonBytes)
        let signature = try key.signature(for: Array(signingInput.utf8))
        return signingInput + "." + Base64URLCoder.encode(Array(signature.rawRepresentation))
    }
}
