extension Collection<UInt8> {
    /// Calls `body` with a NUL-terminated copy of these bytes, on the stack when short.
    package func withCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        let n = count
        return try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: n + 1) { buffer in
            // One copy from contiguous storage (arrays, slices), else element by element.
            let end =
                withContiguousStorageIfAvailable { buffer.initialize(fromContentsOf: $0) }
                ?? buffer.initialize(fromContentsOf: self)
            buffer[end] = 0
            return try buffer.withMemoryRebound(to: CChar.self) { chars in
                // Never nil: the buffer holds at least the terminating NUL.
                guard let base = chars.baseAddress else { preconditionFailure("empty C string buffer") }
                return try body(base)
            }
        }
    }
}
