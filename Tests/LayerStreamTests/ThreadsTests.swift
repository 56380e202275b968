import Glibc
import LayerStream
import Testing
import UnpackSystem

@Suite struct ThreadsTests {
    /// The helper threads carry their names, so that `top -H` and `perf` tell them apart.
    @Test func aStartedThreadRunsUnderItsName() throws {
        final class Seen: @unchecked Sendable {
            let lock = ConditionLock()
            var name: String?
        }
        let seen = Seen()
        try startThread(name: "file finisher and more") {
            var bytes = [UInt8](repeating: 0, count: 64)
            let fd = open("/proc/thread-self/comm", O_RDONLY)
            let count = fd >= 0 ? read(fd, &bytes, bytes.count) : -1
            if fd >= 0 { close(fd) }
            seen.lock.lock()
            seen.name = count > 0 ? String(decoding: bytes[..<count], as: UTF8.self) : "(unreadable)"
            seen.lock.signal()
            seen.lock.unlock()
        }
        seen.lock.lock()
        while seen.name == nil { seen.lock.wait() }
        seen.lock.unlock()
        #expect(seen.name == "file finisher a\n", "the first 15 bytes of the name")
    }
}
