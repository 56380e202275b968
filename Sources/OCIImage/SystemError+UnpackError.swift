import Glibc
import UnpackSystem

/// Where the two error types meet: a failed system call (`SystemError`, thrown below) becomes the
/// one package error (`UnpackError`) with the code a user should see for its errno.
extension SystemError {
    /// The `UnpackError.Code` a user should see for this errno.
    package var code: UnpackError.Code {
        switch errno {
        case ENOENT, ENOTDIR: .notFound
        case EACCES, EPERM, EROFS: .permissionDenied
        default: .io
        }
    }

    /// As `unpackError(_:context:)`, but a missing file (ENOENT, ENOTDIR) gets its own sentence.
    package func unpackError(missing: String, otherwise message: String, context: UnpackError.Context) -> UnpackError {
        code == .notFound
            ? UnpackError(.notFound, missing, context: context, underlying: self)
            : unpackError(message, context: context)
    }

    /// This error as an `UnpackError`, with `message` in front.
    package func unpackError(_ message: String, context: UnpackError.Context = .init()) -> UnpackError {
        UnpackError(code, "\(message): \(String(cString: strerror(errno)))", context: context, underlying: self)
    }
}

extension SystemError {
    /// Runs `body` and turns its `SystemError` into the `UnpackError` that `describe` makes of it:
    /// the one place where the two error types meet.
    package static func mapping<T>(
        _ body: () throws(SystemError) -> T, to describe: (SystemError) -> UnpackError
    ) throws(UnpackError) -> T {
        do throws(SystemError) {
            return try body()
        } catch {
            throw describe(error)
        }
    }
}

extension Interrupts {
    /// Throws `interrupted` when a signal arrived.
    package static func check() throws(UnpackError) {
        if let signal = pending {
            throw UnpackError(.interrupted, "interrupted by signal \(signal) (\(Interrupts.name(of: signal)))")
        }
    }
}
