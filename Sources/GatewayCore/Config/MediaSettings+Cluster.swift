extension MediaSettings {
    /// Refuses `backend: fs` on PostgreSQL (cluster mode) unless `shared_dir: true` says that
    /// `dir` is storage every node mounts: otherwise the files would be on the local disk of the
    /// node that took the upload, which the other nodes cannot read. `check-config` and `serve`
    /// both stop with this diagnostic at `media.backend`.
    func validate(storeKind: StoreSettings.Kind, codingPath: [any CodingKey]) throws {
        if storeKind == .postgres && backend == .fs && !sharedDir {
            throw DecodingError.dataCorrupted(.init(
                codingPath: codingPath + [CodingKeys.backend],
                debugDescription: "store.kind is postgres (cluster mode) but media.backend is fs: a node's local disk is not shared, "
                    + "so media uploaded on one node could not be read on the others; use backend: s3 with media.s3 "
                    + "(any S3-compatible service; docs/MEDIA.md), or set media.shared_dir: true if media.dir is storage "
                    + "every node mounts"))
        }
    }
}
