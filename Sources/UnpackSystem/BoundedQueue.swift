/// A first-in first-out hand-off from one producing thread to one consuming thread, bounded in
/// elements and in weight (bytes), so that memory does not grow with the work. It is the one
/// queue of the pipeline: the layer reader hands filled buffers to the tar reader and the hasher
/// through it, both hand them back through it, and the applier hands small files to the file
/// finisher through it.
///
/// The ends of a queue:
/// - the producer ends it with `finish()`, or with `finish(throwing:)`, whose error the consumer
///   receives after the elements pushed before it;
/// - the consumer refuses further elements with `refuse(_:)`: queued elements are dropped and
///   the producer's next `push` (or a waiting one) throws that error;
/// - either side cancels it with `cancel()`: queued elements are dropped, `push` returns false
///   and `pop` returns nil from then on, and every waiting thread wakes.
///
/// A queue made with `tracksCompletion` counts an element as outstanding until the consumer calls
/// `complete(weight:)` for it, so the producer can wait for the work itself with
/// `waitUntilDone()`, and the element's weight is held until then (its memory is in use while it
/// is being worked on).
///
/// `wakeBatch` lets a consumer that has caught up sleep until that many elements wait (or the
/// producer waits for room, or waits until done, or ends the queue): fewer wake-ups when each
/// element is little work.
///
/// Elements cross threads: the caller hands over only what the other thread may own.
@usableFromInline package final class BoundedQueue<Element, Failure: Error>: @unchecked Sendable {
    @usableFromInline let condition = ConditionLock()
    @usableFromInline var items: [(element: Element, weight: Int)?] = []
    @usableFromInline var head = 0
    /// The weight of the queued elements, and of the taken ones not yet completed.
    @usableFromInline var weight = 0
    @usableFromInline var outstanding = 0
    @usableFromInline var end: Result<Void, Failure>?
    @usableFromInline var refusal: Failure?
    @usableFromInline var cancelled = false
    @usableFromInline var producerWaiting = false
    @usableFromInline var consumerWaiting = false
    @usableFromInline var waitingUntilDone = false

    @usableFromInline let capacity: Int
    @usableFromInline let weightLimit: Int
    @usableFromInline let wakeBatch: Int
    @usableFromInline let tracksCompletion: Bool
    /// A producer waiting for room is woken once the queue is down to this many (half of a
    /// batching queue: fewer wake-ups on both sides).
    @usableFromInline let resumeAt: Int

    /// A queue of at most `capacity` elements. A push into a queue that holds an element waits
    /// while the weight would pass `weightLimit` (the weight of queued elements, and with
    /// `tracksCompletion` of taken ones not yet completed); a push into an empty queue does not.
    package init(capacity: Int, weightLimit: Int = .max, wakeBatch: Int = 1, tracksCompletion: Bool = false) {
        precondition(capacity > 0 && wakeBatch > 0 && wakeBatch <= capacity)
        self.capacity = capacity
        self.weightLimit = weightLimit
        self.wakeBatch = wakeBatch
        self.tracksCompletion = tracksCompletion
        resumeAt = wakeBatch > 1 ? capacity / 2 : capacity - 1
    }

    @usableFromInline var count: Int { items.count - head }

    /// Appends `element`, waiting while the queue is full. Returns false when the queue was
    /// cancelled (the element is dropped); throws the consumer's refusal.
    @inlinable @discardableResult
    package func push(_ element: Element, weight elementWeight: Int = 0) throws(Failure) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while refusal == nil && !cancelled
            && (count >= capacity || (count > 0 && weight + elementWeight > weightLimit))
        {
            if consumerWaiting { condition.broadcast() }
            producerWaiting = true
            condition.wait()
            producerWaiting = false
        }
        if let refusal { throw refusal }
        if cancelled { return false }
        precondition(end == nil, "push after the end of a queue")
        items.append((element, elementWeight))
        weight += elementWeight
        if tracksCompletion { outstanding += 1 }
        if consumerWaiting && count >= wakeBatch { condition.broadcast() }
        return true
    }

    /// The next element, waiting for one. Returns nil at the end of a finished queue and after a
    /// cancellation or a refusal; throws the producer's error once the elements before it are taken.
    ///
    /// `completing` first completes the element taken before (queues made with
    /// `tracksCompletion`), under the same lock: a consumer that works through many small
    /// elements takes the lock once per element, not twice.
    @inlinable package func pop(completing previousWeight: Int? = nil) throws(Failure) -> Element? {
        condition.lock()
        defer { condition.unlock() }
        if let previousWeight { completeLocked(weight: previousWeight) }
        if count == 0 {
            consumerWaiting = true
            while !cancelled && refusal == nil && end == nil
                && !(count >= wakeBatch || (count > 0 && (producerWaiting || waitingUntilDone)))
            {
                condition.wait()
            }
            consumerWaiting = false
        }
        if cancelled || refusal != nil { return nil }
        guard count > 0, let taken = items[head] else {
            if case .failure(let error) = end { throw error }
            return nil
        }
        items[head] = nil
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        }
        if !tracksCompletion { weight -= taken.weight }
        if producerWaiting && count <= resumeAt && !waitingUntilDone { condition.broadcast() }
        return taken.element
    }

    /// The consumer is done with an element it took (queues made with `tracksCompletion`).
    @inlinable package func complete(weight elementWeight: Int) {
        condition.lock()
        defer { condition.unlock() }
        completeLocked(weight: elementWeight)
    }

    @usableFromInline func completeLocked(weight elementWeight: Int) {
        precondition(tracksCompletion, "complete on a queue that does not track completion")
        outstanding -= 1
        weight -= elementWeight
        if producerWaiting && (waitingUntilDone ? outstanding == 0 : count <= resumeAt) { condition.broadcast() }
    }

    /// Waits until every element pushed has been completed (queues made with
    /// `tracksCompletion`); throws the consumer's refusal.
    @inlinable package func waitUntilDone() throws(Failure) {
        precondition(tracksCompletion, "waitUntilDone on a queue that does not track completion")
        condition.lock()
        defer { condition.unlock() }
        waitingUntilDone = true
        defer { waitingUntilDone = false }
        if consumerWaiting { condition.broadcast() }
        while outstanding > 0 && !cancelled {
            producerWaiting = true
            condition.wait()
            producerWaiting = false
        }
        if let refusal { throw refusal }
    }

    /// The producer's end: the consumer takes what is queued, then gets nil.
    @inlinable package func finish() { close(end: .success(())) }

    /// The producer's end with an error, which the consumer gets after what is queued.
    @inlinable package func finish(throwing error: Failure) { close(end: .failure(error)) }

    @usableFromInline func close(end: Result<Void, Failure>) {
        condition.lock()
        if self.end == nil { self.end = end }
        condition.broadcast()
        condition.unlock()
    }

    /// The consumer stops taking elements: the queued ones are dropped, and `push` and
    /// `waitUntilDone` throw `error` (the first refusal wins).
    @inlinable package func refuse(_ error: Failure) {
        condition.lock()
        if refusal == nil { refusal = error }
        let dropped = dropQueued()
        condition.broadcast()
        condition.unlock()
        _ = consume dropped  // released outside the lock (elements may close files)
    }

    /// Stops both sides: the queued elements are dropped, and every waiting thread wakes.
    @inlinable package func cancel() {
        condition.lock()
        cancelled = true
        let dropped = dropQueued()
        condition.broadcast()
        condition.unlock()
        _ = consume dropped
    }

    /// Takes the queued elements out (locked); they are not outstanding any more.
    @usableFromInline func dropQueued() -> [(element: Element, weight: Int)?] {
        let dropped = Array(items[head...])
        for case let item? in dropped {
            weight -= item.weight
            if tracksCompletion { outstanding -= 1 }
        }
        items.removeAll()
        head = 0
        return dropped
    }
}
