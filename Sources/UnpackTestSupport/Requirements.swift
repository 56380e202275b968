import Foundation
import Glibc

/// Warnings collected from any thread.
package final class WarningLog: @unchecked Sendable {
    // Guarded by `lock`; the unpacker may warn from any thread.
    private var items: [String] = []
    private let lock = NSLock()
    package init() {}
    package func append(_ s: String) { lock.withLock { items.append(s) } }
    package var all: [String] { lock.withLock { items } }
}

package let isRoot = geteuid() == 0

/// What the environment must provide, from `OCI_UNPACK_REQUIRE` (comma-separated: `root`, `acl`,
/// `openat2`, `userns`; `.ci/run` sets all of them). A test gated on a required capability runs,
/// and fails, instead of being skipped where the capability is missing, and
/// `RequirementTests` checks each one directly: CI cannot go green by skipping.
package enum Required {
    package static let names: Set<String> = Set(
        (ProcessInfo.processInfo.environment["OCI_UNPACK_REQUIRE"] ?? "").split(separator: ",").map {
            String($0).trimmingCharacters(in: .whitespaces)
        })

    /// Whether a test gated on `name` runs: when the capability is there, or when it is required.
    package static func gate(_ name: String, available: Bool) -> Bool { available || names.contains(name) }
}

/// Root-only tests run as root, or everywhere when root is required (and then fail loudly).
package let rootTestsRun = Required.gate("root", available: isRoot)
