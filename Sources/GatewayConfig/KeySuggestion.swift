/// Finds the key a misspelt one was probably meant to be.
enum KeySuggestion {
    /// The candidate nearest to `key`, when near enough to be a typo, or nil.
    ///
    /// A candidate that differs only in case and separators (`maxFrameBytes` for
    /// `max_frame_bytes`) is nearest; otherwise the edit distance decides (a swap of two adjacent
    /// characters counts as one edit), allowing one edit for keys of up to five characters and
    /// two beyond. Ties go to the candidate first in `candidates`.
    static func closest(to key: String, among candidates: [String]) -> String? {
        let normalizedKey = normalized(key)
        if let sameWords = candidates.first(where: { $0 != key && normalized($0) == normalizedKey }) {
            return sameWords
        }
        let limit = min(2, max(1, key.count / 3))
        var best: (candidate: String, distance: Int)?
        for candidate in candidates where candidate != key {
            let distance = editDistance(key, candidate)
            if distance <= limit, distance < (best?.distance ?? .max) {
                best = (candidate, distance)
            }
        }
        return best?.candidate
    }

    private static func normalized(_ key: String) -> String {
        key.lowercased().filter { $0 != "_" && $0 != "-" }
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
    /// adjacent characters each cost one.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var distance = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    distance = min(distance, table[i - 2][j - 2] + 1)
                }
                table[i][j] = distance
            }
        }
        return table[a.count][b.count]
    }
}
