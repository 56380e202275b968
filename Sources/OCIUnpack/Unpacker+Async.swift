import OCIImage
import Resolution
import UnpackSystem

// The asynchronous API: each call runs its synchronous twin on a thread of its own, so that the
// cooperative pool is never blocked for the length of an unpack (or a registry's answer), and
// cancelling the calling task cancels the work.
extension Unpacker {
    /// `unpack(_:into:request:options:)` from Swift concurrency. Cancelling the task cancels
    /// the unpack (through `options.cancellation`, made when nil): it throws `interrupted` and
    /// leaves the target as it was.
    public func unpack(
        _ reference: String, into bundle: String, request: ResolutionRequest, options: UnpackOptions = .init()
    ) async throws(UnpackError) -> UnpackResult {
        let (options, token) = Self.cancellable(options)
        return try await Self.offThePool(cancelling: token) { () throws(UnpackError) in
            try self.unpack(reference, into: bundle, request: request, options: options)
        }
    }

    /// `unpack(_:into:options:)` (an image resolved in any source) from Swift concurrency;
    /// cancelling the task cancels the unpack.
    public func unpack(_ image: ResolvedImage, into bundle: String, options: UnpackOptions = .init())
        async throws(UnpackError) -> UnpackResult
    {
        let (options, token) = Self.cancellable(options)
        return try await Self.offThePool(cancelling: token) { () throws(UnpackError) in
            try self.unpack(image, into: bundle, options: options)
        }
    }

    /// `resolve(_:request:)` from Swift concurrency (a registry is asked on the unpacker's own
    /// thread). A task cancelled before it starts throws `interrupted`.
    public func resolve(_ reference: String, request: ResolutionRequest) async throws(UnpackError) -> ResolvedImage {
        try await Self.offThePool(cancelling: nil) { () throws(UnpackError) in
            try self.resolve(reference, request: request)
        }
    }

    /// `verifyVariants(_:platform:options:)` from Swift concurrency. A task cancelled before it
    /// starts throws `interrupted`.
    public func verifyVariants(_ reference: String, platform: Platform?, options: VerifyOptions = .init())
        async throws(UnpackError) -> VariantReport
    {
        try await Self.offThePool(cancelling: nil) { () throws(UnpackError) in
            try self.verifyVariants(reference, platform: platform, options: options)
        }
    }

    /// `options` with a cancellation token the task can cancel.
    private static func cancellable(_ options: UnpackOptions) -> (UnpackOptions, Cancellation) {
        var options = options
        let token = options.cancellation ?? Cancellation()
        options.cancellation = token
        return (options, token)
    }

    /// Runs `work` on a new thread and resumes the caller with its result; task cancellation
    /// cancels `token`.
    private static func offThePool<T: Sendable>(
        cancelling token: Cancellation?, _ work: @escaping @Sendable () throws(UnpackError) -> T
    ) async throws(UnpackError) -> T {
        if Task.isCancelled { throw UnpackError(.interrupted, "the task was cancelled") }
        let result: Result<T, UnpackError> = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, UnpackError>, Never>) in
                do throws(SystemError) {
                    try startThread(name: "oci-unpack") {
                        continuation.resume(returning: Result { () throws(UnpackError) in try work() })
                    }
                } catch {
                    continuation.resume(
                        returning: .failure(error.unpackError("cannot start a thread for the unpack")))
                }
            }
        } onCancel: {
            token?.cancel()
        }
        return try result.get()
    }
}
