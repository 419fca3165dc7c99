import AsyncHTTPClient
import GatewayCore
import Logging
import MediaStore

/// Builds the media service of `media:` (docs/MEDIA.md) on the gateway's own store.
enum MediaWiring {
    static func make(
        _ settings: MediaSettings, metadata: any MediaMetadataStore, groups: any GroupStore, clock: any GatewayClock, logger: Logger
    ) throws -> MediaService {
        let blobs: any BlobStore
        switch settings.backend {
        case .fs:
            blobs = try FileBlobStore(directory: settings.dir)
        case .s3:
            // `media.s3` is required with `backend: s3` (checked when the config is decoded).
            guard let s3 = settings.s3 else { throw BootstrapError("media.s3 is required with backend s3") }
            // The process-wide client needs no shutdown.
            blobs = try S3BlobStore(settings: s3, client: HTTPClient.shared)
        }
        return try MediaService(settings: settings, blobs: blobs, metadata: metadata, groups: groups, clock: clock, logger: logger)
    }
}
