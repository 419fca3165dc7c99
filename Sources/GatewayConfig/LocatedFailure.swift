/// An error a `Decodable` threw that is not a `DecodingError`, with the path of the node it was
/// decoding when it threw.
struct LocatedFailure: Error {
    var path: [PathKey]
    var message: String
}
