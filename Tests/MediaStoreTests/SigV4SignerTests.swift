import Foundation
import Testing

@testable import MediaStore

/// Vectors from AWS's Signature Version 4 test suite (aws-sig-v4-test-suite: get-vanilla,
/// post-vanilla, get-vanilla-query-order-key-case) and the S3 documentation's GET Object
/// example (header-based auth with a Range header).
@Suite("AWS Signature V4")
struct SigV4SignerTests {
    let suite = SigV4Signer(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", region: "us-east-1", service: "service")
    let headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")]
    let scope = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature="

    @Test func getVanilla() {
        let auth = suite.authorization(method: "GET", path: "/", query: [], headers: headers, payloadSHA256: SigV4Signer.emptySHA256, amzDate: "20150830T123600Z")
        #expect(auth == scope + "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    }

    @Test func postVanilla() {
        let auth = suite.authorization(method: "POST", path: "/", query: [], headers: headers, payloadSHA256: SigV4Signer.emptySHA256, amzDate: "20150830T123600Z")
        #expect(auth == scope + "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
    }

    @Test func getVanillaQueryOrderKeyCase() {
        let auth = suite.authorization(
            method: "GET", path: "/", query: [("Param2", "value2"), ("Param1", "value1")], headers: headers, payloadSHA256: SigV4Signer.emptySHA256,
            amzDate: "20150830T123600Z")
        #expect(auth == scope + "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
    }

    @Test func s3GetObjectExample() {
        let signer = SigV4Signer(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1", service: "s3")
        let auth = signer.authorization(
            method: "GET", path: "/test.txt", query: [],
            headers: [
                ("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"), ("x-amz-content-sha256", SigV4Signer.emptySHA256),
                ("x-amz-date", "20130524T000000Z"),
            ],
            payloadSHA256: SigV4Signer.emptySHA256, amzDate: "20130524T000000Z")
        #expect(
            auth
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        )
    }

    @Test func timestampAndEncoding() {
        #expect(SigV4Signer.timestamp(Date(timeIntervalSince1970: 1_440_938_160)) == "20150830T123600Z")
        #expect(SigV4Signer.encode("a b/c~d*") == "a%20b%2Fc~d%2A")
        #expect(SigV4Signer.encode("a b/c", keepSlash: true) == "a%20b/c")
    }
}
