/// Token buckets keyed by user or IP, at most `capacity` of them.
///
/// When full, a new key takes the slot of the least recently seen one: that bucket has been
/// idle longest, so it is the one most likely to have refilled (a full bucket and a forgotten
/// one behave the same). The recency list is threaded through the slot array by index, so a
/// known key costs one hash lookup and a few index writes, and no allocation.
///
/// A value type without locking: `RateLimitStage` keeps it in a `Mutex`.
struct BucketTable {
    enum Key: Hashable {
        case user(String)
        case ip(String)
    }

    struct Slot {
        var key: Key
        var tokens: Double
        /// When `tokens` was last brought up to date, in the clock's milliseconds.
        var updatedAt: Int64
        /// Neighbours in recency order (-1 at the ends).
        var newer: Int32
        var older: Int32
    }

    let capacity: Int
    private var slots: [Slot] = []
    private var index: [Key: Int32] = [:]
    private var newest: Int32 = -1
    private var oldest: Int32 = -1

    init(capacity: Int) {
        precondition(capacity >= 2, "a table for a user and an IP at once needs two slots")
        self.capacity = capacity
    }

    /// Keys tracked now (never above `capacity`).
    var count: Int { index.count }

    /// The slot of `key` with its tokens refilled to `now`, marked most recently used. A new key
    /// starts with a full bucket, in the least recently used slot when the table is full.
    mutating func refill(_ key: Key, limit: RateLimitSettings.Limit, now: Int64) -> Int32 {
        let burst = Double(limit.burst)
        if let slot = index[key] {
            touch(slot)
            // A clock that stepped back refills nothing and restarts from the new time.
            let elapsed = max(0, now &- slots[Int(slot)].updatedAt)
            if elapsed > 0 {
                slots[Int(slot)].tokens = min(burst, slots[Int(slot)].tokens + Double(elapsed) * limit.rate / 1000)
            }
            slots[Int(slot)].updatedAt = now
            return slot
        }
        let slot: Int32
        if slots.count < capacity {
            slot = Int32(slots.count)
            slots.append(Slot(key: key, tokens: burst, updatedAt: now, newer: -1, older: -1))
        } else {
            slot = oldest
            unlink(slot)
            index.removeValue(forKey: slots[Int(slot)].key)
            slots[Int(slot)] = Slot(key: key, tokens: burst, updatedAt: now, newer: -1, older: -1)
        }
        index[key] = slot
        pushNewest(slot)
        return slot
    }

    /// Milliseconds until the slot holds a whole token (0 when it holds one now).
    func wait(_ slot: Int32, limit: RateLimitSettings.Limit) -> Int {
        let missing = 1 - slots[Int(slot)].tokens
        guard missing > 0 else { return 0 }
        return max(1, Int((missing * 1000 / limit.rate).rounded(.up)))
    }

    mutating func take(_ slot: Int32) {
        slots[Int(slot)].tokens -= 1
    }

    func tokens(_ key: Key) -> Double? {
        index[key].map { slots[Int($0)].tokens }
    }

    // MARK: Recency list

    private mutating func touch(_ slot: Int32) {
        guard slot != newest else { return }
        unlink(slot)
        pushNewest(slot)
    }

    private mutating func unlink(_ slot: Int32) {
        let newer = slots[Int(slot)].newer
        let older = slots[Int(slot)].older
        if newer >= 0 { slots[Int(newer)].older = older } else { newest = older }
        if older >= 0 { slots[Int(older)].newer = newer } else { oldest = newer }
        slots[Int(slot)].newer = -1
        slots[Int(slot)].older = -1
    }

    private mutating func pushNewest(_ slot: Int32) {
        slots[Int(slot)].older = newest
        slots[Int(slot)].newer = -1
        if newest >= 0 { slots[Int(newest)].newer = slot }
        newest = slot
        if oldest < 0 { oldest = slot }
    }
}
