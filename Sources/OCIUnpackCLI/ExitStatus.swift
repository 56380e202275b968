import OCIImage
import OCIUnpack

/// The command line's exit statuses: the process-level meaning of each `UnpackError.Code`.
///
/// Exit statuses never give a sysexits.h number another meaning (supervisors act on them: 75,
/// EX_TEMPFAIL, invites a retry): the four codes that match a sysexits.h meaning use its number
/// (64 EX_USAGE, 66 EX_NOINPUT, 74 EX_IOERR, 77 EX_NOPERM), the others are 80-90, 1 is a bug and
/// 130 a signal. docs/exit-codes.md documents this table.
extension UnpackError.Code {
    /// The exit status for this code; 1 (a bug) for a code the table does not know.
    public var exitCode: Int32 { Self.exitStatuses[self] ?? 1 }

    private static let exitStatuses: [UnpackError.Code: Int32] = [
        .internal: 1, .invalidArgument: 64, .notFound: 66, .platformNotFound: 80,
        .unsupportedMediaType: 81, .digestMismatch: 82, .sizeMismatch: 83, .invalidImage: 84,
        .corruptLayer: 85, .unsafePath: 86, .bundleExists: 87, .permissionDenied: 77,
        .limitExceeded: 88, .variantsDiffer: 89, .policyRejected: 90, .io: 74, .interrupted: 130,
    ]
}

extension VariantReport {
    /// The process exit status of `verify-variants`: 0 when every group agrees or was skipped,
    /// else the status of the report's ``VariantReport/outcome``.
    var exitCode: Int32 { outcome?.exitCode ?? 0 }
}

/// The documented `verify-variants --json` object: the report's keys and the exit status.
struct VariantReportDocument: Encodable {
    let report: VariantReport

    enum CodingKeys: String, CodingKey { case exitCode }

    func encode(to encoder: any Encoder) throws {
        try report.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(report.exitCode, forKey: .exitCode)
    }
}
