import OCIImage

extension RegistrySource {
    /// The cosign media types of a signature manifest's layers and its own.
    static let attachmentManifestType = MediaType.ociManifest.rawValue

    /// An `http(s)` lookaside's signatures (GET `BASE@ALGORITHM=HEX/signature-N` from 1 until a
    /// 404), then, when asked, the sigstore attachments: the manifest tagged `sha256-HEX.sig` in
    /// the repository, whose layers are the signatures (each blob checked against its digest).
    /// A lookaside is an ordinary web server: it gets no registry credentials.
    package func signatures(_ request: SignatureRequest) throws(UnpackError) -> [StoredSignature] {
        var found: [StoredSignature] = []
        if let base = request.lookaside {
            for number in 1...(request.maxSignatures + 1) {
                let url = request.lookasideURL(base, number: number)
                // Any endpoint's HTTP client will do (one that answers: the origin may be down
                // while a mirror serves); the lookaside is its own server, sent no credentials.
                let reply = try endpoints.first("signature \(url)") { (client) throws(UnpackError) in
                    try client.fetch(url: url, what: "signature \(url)", limit: request.maxBytes)
                }.value
                guard reply.status.code != 404 else { break }
                guard number <= request.maxSignatures else {
                    throw UnpackError(
                        .limitExceeded,
                        "the lookaside \(base) holds more than \(request.maxSignatures) signatures for \(request.manifest)",
                        context: .init(digest: request.manifest))
                }
                found.append(.blob(reply.body, origin: url))
            }
        }
        if request.attachments {
            found += try attachments(request, room: request.maxSignatures - found.count)
        }
        return found
    }

    private func attachments(_ request: SignatureRequest, room: Int) throws(UnpackError) -> [StoredSignature] {
        let tag = "\(request.manifest.algorithm.rawValue)-\(request.manifest.encoded).sig"
        let (reply, endpoint) = try endpoints.first("signature manifest \(tag)") { (client) throws(UnpackError) in
            try client.fetch(
                "manifests/\(tag)", accept: [Self.attachmentManifestType], limit: limits.maxManifestBytes)
        }
        guard reply.status.code != 404 else { return [] }
        let place = "the signature manifest \(tag)"
        if let type = reply.headers.first(name: "Content-Type").map({ String($0.prefix { $0 != ";" }) }),
            type != Self.attachmentManifestType
        {
            throw UnpackError(
                .invalidImage, "\(place) has media type \(type.truncatedForMessage), not \(Self.attachmentManifestType)"
            )
        }
        let manifest = try ImageDocuments.manifest(
            from: reply.body, expected: .ociManifest, where: place)
        guard manifest.layers.count <= room else {
            throw UnpackError(
                .limitExceeded, "\(place) holds \(manifest.layers.count) signatures, more than \(request.maxSignatures)"
            )
        }
        let client = try endpoints.client(endpoint)
        var found: [StoredSignature] = []
        for (i, layer) in manifest.layers.enumerated() {
            guard layer.size <= Int64(request.maxBytes) else {
                throw UnpackError(
                    .limitExceeded, "\(place): layer \(i) is larger than \(request.maxBytes) bytes",
                    context: .init(digest: layer.digest, layerIndex: i))
            }
            let blob = try client.fetch("blobs/\(layer.digest)", limit: Int(layer.size) + 1)
            guard blob.status.code != 404 else {
                throw UnpackError(
                    .notFound, "\(place): layer \(i) (\(layer.digest)) is missing", context: .init(digest: layer.digest)
                )
            }
            try layer.checkContent(blob.body, from: client.place)
            found.append(
                .attachment(
                    payload: blob.body, mediaType: layer.mediaType.rawValue, annotations: layer.annotations ?? [:],
                    origin: "\(tag) layer \(i)"))
        }
        return found
    }
}
