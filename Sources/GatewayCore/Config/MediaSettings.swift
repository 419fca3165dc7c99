/// `media:`: uploads, attachments, thumbnails and where blobs are kept (docs/MEDIA.md).
///
/// | key | type | default | constraint |
/// |---|---|---|---|
/// | `backend` | `fs` or `s3` | `fs` | |
/// | `dir` | path | `data/media` | with `fs`: the blob directory; with `s3`: temporary files only |
/// | `max_bytes` | int | 26214400 (25 MiB) | 1...4294967296 |
/// | `inline_max_bytes` | int | 49152 | 0...max_bytes (decoded bytes; the frame limit bounds it too) |
/// | `quota_bytes` | int | 1073741824 (1 GiB) | >= max_bytes; original bytes one user may upload in all |
/// | `zstd_level` | int | 3 | 1...19 |
/// | `min_ratio` | double | 1.1 | 1.0...100; unknown types stay compressed only when original/compressed >= this |
/// | `s3` | mapping | | required with `backend: s3` |
/// | `shared_dir` | bool | `false` | with `fs` on PostgreSQL: `dir` is storage every node mounts (otherwise refused) |
/// | `thumbnail` | mapping | | |
public struct MediaSettings: Decodable, Sendable {
    public enum Backend: String, Decodable, Sendable { case fs, s3 }

    public var backend: Backend = .fs
    public var dir: String = "data/media"
    public var maxBytes: Int = 25 * 1024 * 1024
    public var inlineMaxBytes: Int = 49152
    public var quotaBytes: Int64 = 1 << 30
    public var zstdLevel: Int = 3
    public var minRatio: Double = 1.1
    public var s3: S3Settings?
    public var thumbnail: ThumbnailSettings = ThumbnailSettings()
    /// `shared_dir`: with `fs` on PostgreSQL, `dir` is storage every node mounts.
    public var sharedDir = false

    enum CodingKeys: String, CodingKey {
        case backend, dir, s3, thumbnail
        case sharedDir = "shared_dir"
        case maxBytes = "max_bytes"
        case inlineMaxBytes = "inline_max_bytes"
        case quotaBytes = "quota_bytes"
        case zstdLevel = "zstd_level"
        case minRatio = "min_ratio"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        backend = try c.decodeIfPresent(Backend.self, forKey: .backend) ?? .fs
        dir = try c.decodeIfPresent(String.self, forKey: .dir) ?? "data/media"
        try require(!dir.isEmpty, c, .dir, "must not be empty")
        maxBytes = try c.decodeIfPresent(Int.self, forKey: .maxBytes) ?? 25 * 1024 * 1024
        try require((1...(1 << 32)).contains(maxBytes), c, .maxBytes, "must be 1...4294967296 (was \(maxBytes))")
        inlineMaxBytes = try c.decodeIfPresent(Int.self, forKey: .inlineMaxBytes) ?? min(49152, maxBytes)
        try require((0...maxBytes).contains(inlineMaxBytes), c, .inlineMaxBytes, "must be 0...max_bytes (\(maxBytes)) (was \(inlineMaxBytes))")
        quotaBytes = try c.decodeIfPresent(Int64.self, forKey: .quotaBytes) ?? max(1 << 30, Int64(maxBytes))
        try require(quotaBytes >= Int64(maxBytes), c, .quotaBytes, "must be at least max_bytes (\(maxBytes)) (was \(quotaBytes))")
        zstdLevel = try c.decodeIfPresent(Int.self, forKey: .zstdLevel) ?? 3
        try require((1...19).contains(zstdLevel), c, .zstdLevel, "must be 1...19 (was \(zstdLevel))")
        minRatio = try c.decodeIfPresent(Double.self, forKey: .minRatio) ?? 1.1
        try require(minRatio >= 1.0 && minRatio <= 100, c, .minRatio, "must be 1.0...100 (was \(minRatio))")
        s3 = try c.decodeIfPresent(S3Settings.self, forKey: .s3)
        try require(backend != .s3 || s3 != nil, c, .s3, "required when backend is s3")
        thumbnail = try c.decodeIfPresent(ThumbnailSettings.self, forKey: .thumbnail) ?? ThumbnailSettings()
        sharedDir = try c.decodeIfPresent(Bool.self, forKey: .sharedDir) ?? false
    }

    /// `media.s3`: any S3-compatible service. Credentials fall back to `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_REGION`) from the environment.
    public struct S3Settings: Decodable, Sendable {
        /// Base URL, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`.
        public var endpoint: String
        public var bucket: String
        public var region: String?
        /// `true`: `endpoint/bucket/key` (MinIO, moto); `false`: `bucket.endpoint/key`.
        public var pathStyle: Bool = true
        public var accessKeyID: Secret?
        public var secretAccessKey: Secret?
        /// Files larger than this go up in parts of this size (multipart upload). >= 5 MiB.
        public var partBytes: Int = 8 * 1024 * 1024

        enum CodingKeys: String, CodingKey {
            case endpoint, bucket, region
            case pathStyle = "path_style"
            case accessKeyID = "access_key_id"
            case secretAccessKey = "secret_access_key"
            case partBytes = "part_bytes"
        }

        public init(endpoint: String, bucket: String, region: String? = nil, pathStyle: Bool = true, accessKeyID: Secret? = nil, secretAccessKey: Secret? = nil, partBytes: Int = 8 * 1024 * 1024) {
            self.endpoint = endpoint
            self.bucket = bucket
            self.region = region
            self.pathStyle = pathStyle
            self.accessKeyID = accessKeyID
            self.secretAccessKey = secretAccessKey
            self.partBytes = partBytes
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            endpoint = try c.decode(String.self, forKey: .endpoint)
            try require(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://"), c, .endpoint, "must be an http:// or https:// URL (was '\(endpoint)')")
            bucket = try c.decode(String.self, forKey: .bucket)
            try require((3...63).contains(bucket.count), c, .bucket, "must be 3 to 63 characters (was '\(bucket)')")
            region = try c.decodeIfPresent(String.self, forKey: .region)
            pathStyle = try c.decodeIfPresent(Bool.self, forKey: .pathStyle) ?? true
            accessKeyID = try c.decodeIfPresent(Secret.self, forKey: .accessKeyID)
            secretAccessKey = try c.decodeIfPresent(Secret.self, forKey: .secretAccessKey)
            partBytes = try c.decodeIfPresent(Int.self, forKey: .partBytes) ?? 8 * 1024 * 1024
            try require((5 * 1024 * 1024...1 << 30).contains(partBytes), c, .partBytes, "must be 5242880...1073741824 (was \(partBytes))")
        }
    }

    /// `media.thumbnail`.
    public struct ThumbnailSettings: Decodable, Sendable {
        /// Longest side of a thumbnail, pixels.
        public var maxSide: Int = 320
        /// Images with more pixels (width x height, read from the header) are refused unread.
        public var maxPixels: Int = 50_000_000
        /// Images decoded at once, off the event loops.
        public var concurrency: Int = 2

        enum CodingKeys: String, CodingKey {
            case maxSide = "max_side"
            case maxPixels = "max_pixels"
            case concurrency
        }

        public init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            maxSide = try c.decodeIfPresent(Int.self, forKey: .maxSide) ?? 320
            try require((16...4096).contains(maxSide), c, .maxSide, "must be 16...4096 (was \(maxSide))")
            maxPixels = try c.decodeIfPresent(Int.self, forKey: .maxPixels) ?? 50_000_000
            try require((1...1_000_000_000).contains(maxPixels), c, .maxPixels, "must be 1...1000000000 (was \(maxPixels))")
            concurrency = try c.decodeIfPresent(Int.self, forKey: .concurrency) ?? 2
            try require((1...64).contains(concurrency), c, .concurrency, "must be 1...64 (was \(concurrency))")
        }
    }
}
