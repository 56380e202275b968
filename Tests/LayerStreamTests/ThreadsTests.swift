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

/// The one queue between the pipeline's threads.
@Suite(.timeLimit(.minutes(1))) struct BoundedQueueTests {
    struct Failure: Error, Equatable { let tag: Int }

    /// State shared with a helper thread, under one lock.
    final class Flags: @unchecked Sendable {
        let lock = ConditionLock()
        var values: [String: Int] = [:]
        func set(_ key: String, _ value: Int) {
            lock.lock()
            values[key] = value
            lock.broadcast()
            lock.unlock()
        }
        func get(_ key: String) -> Int? {
            lock.lock()
            defer { lock.unlock() }
            return values[key]
        }
    }

    @Test func elementsArriveInOrderThenTheProducersError() throws {
        let queue = BoundedQueue<Int, Failure>(capacity: 3)
        let producer = try startThread(name: "bq-producer") {
            for i in 0..<1000 { _ = try? queue.push(i) }
            queue.finish(throwing: Failure(tag: 7))
        }
        var seen: [Int] = []
        let error = #expect(throws: Failure.self) {
            while let value = try queue.pop() { seen.append(value) }
        }
        producer.join()
        #expect(seen == Array(0..<1000))
        #expect(error == Failure(tag: 7))
    }

    @Test func aFullQueueHoldsTheProducerUntilAnElementIsTaken() throws {
        let queue = BoundedQueue<Int, Failure>(capacity: 2)
        try queue.push(1)
        try queue.push(2)
        let flags = Flags()
        let producer = try startThread(name: "bq-blocked") {
            let pushed = (try? queue.push(3)) ?? false
            flags.set("pushed", pushed ? 1 : 0)
        }
        usleep(50_000)
        #expect(flags.get("pushed") == nil, "a third element entered a queue of two")
        #expect(try queue.pop() == 1)
        producer.join()
        #expect(flags.get("pushed") == 1)
        queue.finish()
        #expect(try queue.pop() == 2)
        #expect(try queue.pop() == 3)
        #expect(try queue.pop() == nil)
    }

    @Test func weightBoundsTheQueueOnceItHoldsAnElement() throws {
        let queue = BoundedQueue<Int, Failure>(capacity: 10, weightLimit: 100, tracksCompletion: true)
        try queue.push(1, weight: 150)  // alone, an element may weigh more than the limit
        #expect(try queue.pop() == 1)
        try queue.push(2, weight: 10)  // into an empty queue
        let flags = Flags()
        let producer = try startThread(name: "bq-weight") {
            _ = try? queue.push(3, weight: 10)
            flags.set("pushed", 1)
        }
        usleep(50_000)
        #expect(flags.get("pushed") == nil, "the weight of a taken element counts until it is completed")
        queue.complete(weight: 150)
        producer.join()
        #expect(flags.get("pushed") == 1)
    }

    @Test func waitUntilDoneReturnsOnceEveryElementIsCompleted() throws {
        let queue = BoundedQueue<Int, Failure>(capacity: 64, wakeBatch: 8, tracksCompletion: true)
        let done = Flags()
        let consumer = try startThread(name: "bq-consumer") {
            var total = 0
            var finished: Int?  // completed by the next pop, as the file finisher does
            while let value = try? queue.pop(completing: finished) {
                total += value
                done.set("total", total)
                finished = 0
            }
        }
        // Fewer elements than the wake batch: waiting until done must still wake the consumer.
        for i in 1...5 { try queue.push(i) }
        try queue.waitUntilDone()
        #expect(done.get("total") == 15)
        queue.cancel()
        consumer.join()
    }

    @Test func aRefusalDropsTheQueueAndReachesTheProducer() throws {
        let queue = BoundedQueue<Int, Failure>(capacity: 4, tracksCompletion: true)
        try queue.push(1)
        try queue.push(2)
        #expect(try queue.pop() == 1)
        queue.refuse(Failure(tag: 1))
        queue.complete(weight: 0)
        #expect(try queue.pop() == nil, "a refused queue gives nothing more")
        #expect(throws: Failure(tag: 1)) { try queue.push(3) }
        #expect(throws: Failure(tag: 1)) { try queue.waitUntilDone() }
    }

    @Test func cancellingWakesAWaitingConsumerAndProducer() throws {
        let empty = BoundedQueue<Int, Failure>(capacity: 1)
        let full = BoundedQueue<Int, Failure>(capacity: 1)
        try full.push(0)
        let flags = Flags()
        let consumer = try startThread(name: "bq-cons-wait") {
            do {
                flags.set("popped", try empty.pop() ?? -1)
            } catch {
                flags.set("popped", -2)
            }
        }
        let producer = try startThread(name: "bq-prod-wait") {
            flags.set("pushed", ((try? full.push(1)) ?? true) ? 1 : 0)
        }
        usleep(20_000)
        empty.cancel()
        full.cancel()
        consumer.join()
        producer.join()
        #expect(flags.get("popped") == -1, "pop returns nil once cancelled")
        #expect(flags.get("pushed") == 0, "push returns false once cancelled")
    }
}
