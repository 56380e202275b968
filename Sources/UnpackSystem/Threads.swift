internal import CShims
import Glibc

/// A pthread mutex with one condition variable, the primitive under `BoundedQueue` (Foundation's
/// Thread and NSCondition would pull all of Foundation into the binary, and with it a slower
/// start).
@usableFromInline package final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    package init() {
        pthread_mutex_init(mutex, nil)
        // Timed waits count on the monotonic clock: a change of the wall clock does not shorten
        // or stretch them.
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    @usableFromInline package func lock() { pthread_mutex_lock(mutex) }
    @usableFromInline package func unlock() { pthread_mutex_unlock(mutex) }
    /// Waits for a signal; the lock must be held.
    @usableFromInline package func wait() { pthread_cond_wait(cond, mutex) }
    /// Waits for a signal or for `seconds` to pass, whichever comes first; the lock must be held.
    package func wait(seconds: Double) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nanoseconds = Int(now.tv_nsec) + Int(max(seconds, 0) * 1e9)
        var until = timespec(
            tv_sec: now.tv_sec + nanoseconds / 1_000_000_000, tv_nsec: nanoseconds % 1_000_000_000)
        pthread_cond_timedwait(cond, mutex, &until)
    }
    @usableFromInline package func signal() { pthread_cond_signal(cond) }
    @usableFromInline package func broadcast() { pthread_cond_broadcast(cond) }
}

/// A thread started by `startThread`. `join()` waits for it to end; a handle dropped without a
/// join detaches the thread.
package final class ThreadHandle: @unchecked Sendable {
    private var thread: pthread_t?

    fileprivate init(_ thread: pthread_t) { self.thread = thread }

    /// Waits for the thread to return from its body. Idempotent.
    package func join() {
        guard let thread else { return }
        self.thread = nil
        pthread_join(thread, nil)
    }

    deinit {
        if let thread { pthread_detach(thread) }
    }
}

/// Starts a thread running `body`, with a 1 MiB stack and `name` as its system name (as
/// `top -H`, `perf` and /proc/PID/task/TID/comm show it; the kernel keeps 15 bytes). Throws when
/// the system refuses a thread (EAGAIN under a process limit).
@discardableResult
package func startThread(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) -> ThreadHandle {
    final class Box: Sendable {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setstacksize(&attributes, 1 << 20)
    let box = Unmanaged.passRetained(Box(name: name, body: body))
    var thread = pthread_t()
    let rc = pthread_create(
        &thread, &attributes,
        { context in
            guard let context else { return nil }
            let box = Unmanaged<Box>.fromOpaque(context).takeRetainedValue()
            _ = CShims_set_thread_name(box.name)
            box.body()
            return nil
        }, box.toOpaque())
    if rc != 0 {
        box.release()
        throw SystemError(call: "pthread_create (the \(name) thread)", errno: rc)
    }
    return ThreadHandle(thread)
}
