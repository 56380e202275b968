import CGPGME
import Glibc
import OCIImage
import UnpackSystem

/// GPGME's version, checked once per process before any other GPGME call (the library requires
/// it); `nil` when the installed GPGME cannot be initialised.
private let gpgmeVersion: String? = gpgme_check_version(nil).map { String(cString: $0) }

/// OpenPGP signature checks through GPGME, as containers/image makes them for "simple signing":
/// the trusted keys (a `signedBy` requirement's `keyPath`, `keyPaths` or `keyData`) are imported
/// into a keyring of their own, in a GnuPG home made for the check and removed after it, never
/// the user's; a signature is good when it is one valid signature by one of them.
package final class OpenPGPKeyring {
    private let home: String
    private let context: gpgme_ctx_t
    /// The fingerprint of each key that may sign (primary keys and signing subkeys) → the
    /// fingerprint of its primary key.
    package private(set) var signers: [String: String] = [:]

    /// A keyring holding `keys` (each an OpenPGP public key, binary or armored); `origins` names
    /// each for messages (a file, or `keyData`).
    package init(keys: [[UInt8]], origins: [String]) throws(UnpackError) {
        guard gpgmeVersion != nil else {
            throw UnpackError(.internal, "GPGME cannot be initialised (libgpgme's version check failed)")
        }
        home = try Self.makeHome()
        var made: gpgme_ctx_t?
        var status = gpgme_new(&made)
        guard status == 0, let made else {
            try? removeDirectoryTree(home)
            throw Self.failure("GPGME cannot make a context", status)
        }
        context = made
        gpgme_set_offline(context, 1)
        status = gpgme_set_protocol(context, GPGME_PROTOCOL_OpenPGP)
        if status == 0 { status = gpgme_ctx_set_engine_info(context, GPGME_PROTOCOL_OpenPGP, nil, home) }
        guard status == 0 else { throw Self.failure("GPGME cannot use the OpenPGP engine (gpg)", status) }
        for (key, origin) in zip(keys, origins) { try importKey(key, origin: origin) }
        try listSigners()
    }

    deinit {
        gpgme_release(context)
        try? removeDirectoryTree(home)
    }

    /// The payload of an opaque OpenPGP signed message and the fingerprint of the key that signed
    /// it, or why it is not one good signature by a key of this keyring.
    package func verify(_ signature: [UInt8]) -> Result<(payload: [UInt8], fingerprint: String), SignatureProblem> {
        var signed: gpgme_data_t?
        var plain: gpgme_data_t?
        let made = signature.withUnsafeBufferPointer { buffer in
            gpgme_data_new_from_mem(
                &signed, buffer.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) },
                buffer.count, 1)
        }
        guard made == 0, let signed else { return .failure(SignatureProblem("cannot be read by GPGME")) }
        defer { gpgme_data_release(signed) }
        guard gpgme_data_new(&plain) == 0, let plain else {
            return .failure(SignatureProblem("cannot be verified: GPGME has no memory"))
        }
        var plainOwned: gpgme_data_t? = plain
        defer { if let plainOwned { gpgme_data_release(plainOwned) } }
        let status = gpgme_op_verify(context, signed, nil, plain)
        guard status == 0 else {
            return .failure(SignatureProblem("is not an OpenPGP signed message (\(Self.text(status)))"))
        }
        guard let result = gpgme_op_verify_result(context) else {
            return .failure(SignatureProblem("has no verification result"))
        }
        var signatures: [gpgme_signature_t] = []
        var next = result.pointee.signatures
        while let one = next, signatures.count < 2 {
            signatures.append(one)
            next = one.pointee.next
        }
        guard signatures.count == 1, let only = signatures.first else {
            return .failure(
                SignatureProblem(
                    "holds \(signatures.count == 0 ? "no" : "more than one") OpenPGP signature (exactly one is expected)"
                ))
        }
        let fingerprint = only.pointee.fpr.map { String(cString: $0) } ?? ""
        let sig = only.pointee
        if gpgme_err_code(sig.status) == GPG_ERR_NO_PUBKEY {
            return .failure(SignatureProblem("is signed by key \(fingerprint), which is not trusted"))
        }
        guard sig.status == 0, sig.validity != GPGME_VALIDITY_NEVER, sig.validity_reason == 0,
            oci_gpgme_signature_wrong_key_usage(only) == 0
        else {
            return .failure(
                SignatureProblem("is not a valid signature by key \(fingerprint) (\(Self.text(sig.status)))"))
        }
        guard signers[fingerprint] != nil else {
            return .failure(SignatureProblem("is signed by key \(fingerprint), which is not trusted"))
        }
        var length = 0
        plainOwned = nil
        guard let bytes = gpgme_data_release_and_get_mem(plain, &length) else { return .success(([], fingerprint)) }
        defer { gpgme_free(bytes) }
        let payload = Array(UnsafeRawBufferPointer(start: bytes, count: length))
        return .success((payload, fingerprint))
    }

    private func importKey(_ key: [UInt8], origin: String) throws(UnpackError) {
        var data: gpgme_data_t?
        let made = key.withUnsafeBufferPointer { buffer in
            gpgme_data_new_from_mem(
                &data, buffer.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) },
                buffer.count, 1)
        }
        guard made == 0, let data else { throw Self.failure("the key of \(origin) cannot be read by GPGME", made) }
        defer { gpgme_data_release(data) }
        let status = gpgme_op_import(context, data)
        guard status == 0 else { throw Self.failure("the key of \(origin) cannot be imported", status, path: origin) }
        guard let result = gpgme_op_import_result(context),
            result.pointee.imported + result.pointee.unchanged > 0
        else {
            throw UnpackError(
                .invalidArgument, "\(origin) holds no OpenPGP public key", context: .init(path: origin))
        }
    }

    /// Every key now in the keyring: its primary key and each subkey that may sign.
    private func listSigners() throws(UnpackError) {
        var status = gpgme_op_keylist_start(context, nil, 0)
        guard status == 0 else { throw Self.failure("the imported keys cannot be listed", status) }
        defer { gpgme_op_keylist_end(context) }
        while true {
            var key: gpgme_key_t?
            status = gpgme_op_keylist_next(context, &key)
            guard status == 0, let key else { break }
            defer { gpgme_key_unref(key) }
            guard let primary = key.pointee.subkeys, let primaryPrint = primary.pointee.fpr.map({ String(cString: $0) })
            else { continue }
            var subkey: gpgme_subkey_t? = primary
            while let one = subkey {
                if let print = one.pointee.fpr.map({ String(cString: $0) }),
                    one == primary || (oci_gpgme_subkey_can_sign(one) != 0 && oci_gpgme_subkey_revoked(one) == 0)
                {
                    signers[print] = primaryPrint
                }
                subkey = one.pointee.next
            }
        }
        guard gpgme_err_code(status) == GPG_ERR_EOF else {
            throw Self.failure("the imported keys cannot be listed", status)
        }
    }

    /// A private GnuPG home under `$TMPDIR` (or /tmp).
    private static func makeHome() throws(UnpackError) -> String {
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((base + "/oci-unpack-gnupg-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress.map { mkdtemp($0) != nil } ?? false
        }
        guard made else {
            let code = errno
            throw UnpackError(
                .io, "a temporary GnuPG home cannot be made under \(base): \(String(cString: strerror(code)))",
                context: .init(path: base))
        }
        return String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func text(_ status: gpgme_error_t) -> String {
        String(cString: gpgme_strerror(status))
    }

    private static func failure(_ what: String, _ status: gpgme_error_t, path: String? = nil) -> UnpackError {
        UnpackError(
            path == nil ? .internal : .invalidArgument, "\(what): \(text(status))", context: .init(path: path))
    }
}

/// Why one signature does not count, in words that follow "signature N …".
package struct SignatureProblem: Error, Sendable, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}
