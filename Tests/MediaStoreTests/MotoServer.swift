import Foundation
import GatewayTesting
import Testing

/// A real S3-compatible server for tests: PyPI's moto (scripts/setup-media.sh installs it) on
/// 127.0.0.1 and a free port, with SigV4 checking on (IAM auth), a user whose key may use S3,
/// and a bucket `media`. The Python side exits when the test process is gone (it watches its
/// parent), so a crashed test leaves no server behind.
final class MotoServer: Sendable {
    let process: BackgroundProcess
    let endpoint: String
    let accessKey: String
    let secretKey: String
    let bucket = "media"

    static let script = #"""
        import json, os, sys
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "4"
        from moto.server import ThreadedMotoServer
        import boto3
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = "http://127.0.0.1:%d" % port
        boot = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam = boto3.client("iam", **boot)
        iam.create_user(UserName="gateway")
        key = iam.create_access_key(UserName="gateway")["AccessKey"]
        iam.put_user_policy(UserName="gateway", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        s3.create_bucket(Bucket="media")
        print(json.dumps({"endpoint": endpoint, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}), flush=True)
        import time
        parent = os.getppid()
        while os.getppid() == parent:
            time.sleep(1)
        server.stop()
        """#

    private init(process: BackgroundProcess, endpoint: String, accessKey: String, secretKey: String) {
        self.process = process
        self.endpoint = endpoint
        self.accessKey = accessKey
        self.secretKey = secretKey
    }

    static func start() async throws -> MotoServer {
        let process = try await BackgroundProcess.start("python3", ["-c", script])
        // The first line that is JSON (nil when the script failed).
        let line = await process.line(where: { $0.hasPrefix("{") }, timeout: .seconds(60)) ?? process.output
        guard let json = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String],
            let endpoint = json["endpoint"], let key = json["key"], let secret = json["secret"]
        else {
            await process.kill()
            throw MotoError(description: "moto did not start (is moto[server] installed? scripts/setup-media.sh): \(line)")
        }
        return MotoServer(process: process, endpoint: endpoint, accessKey: key, secretKey: secret)
    }

    /// Kills the server (werkzeug ignores SIGTERM) and waits for it.
    func stop() async {
        await process.kill()
    }
}

struct MotoError: Error, CustomStringConvertible {
    let description: String
}
