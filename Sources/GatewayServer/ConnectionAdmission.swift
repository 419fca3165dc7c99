import NIOCore
import Synchronization

/// The public port's places: every accepted socket and every long-poll session takes one under
/// `limits.max_connections`, and one under `limits.max_connections_per_ip` for its address.
///
/// Sockets are counted from accept to close, whatever they turn into (a WebSocket that never
/// authenticates, a kept-alive HTTP connection, a handshake that never completes), so no way
/// of connecting passes the caps. A socket from a trusted proxy counts in the total only: the
/// addresses behind it are capped per session (`SessionHub`), where `X-Forwarded-For` is known.
final class ConnectionAdmission: Sendable {
    enum Refusal: Sendable {
        /// Over `max_connections`: 503.
        case capacity
        /// Over `max_connections_per_ip`: 429.
        case perAddress
    }

    private struct State {
        var total = 0
        var perAddress: [String: Int] = [:]
    }

    let maxTotal: Int
    let maxPerAddress: Int
    /// Guards the counts.
    private let state = Mutex(State())

    init(maxTotal: Int, maxPerAddress: Int) {
        self.maxTotal = maxTotal
        self.maxPerAddress = maxPerAddress
    }

    var total: Int { state.withLock { $0.total } }

    /// Addresses with at least one place (a closed connection leaves none behind).
    var trackedAddresses: Int { state.withLock { $0.perAddress.count } }

    /// Takes a place, or says why not. Every admitted place is given back with `release`.
    func admit(address: String?) -> Refusal? {
        state.withLock { state in
            guard state.total < maxTotal else { return .capacity }
            if let address {
                let used = state.perAddress[address] ?? 0
                guard used < maxPerAddress else { return .perAddress }
                state.perAddress[address] = used + 1
            }
            state.total += 1
            return nil
        }
    }

    func release(address: String?) {
        state.withLock { state in
            state.total -= 1
            guard let address, let used = state.perAddress[address] else { return }
            state.perAddress[address] = used > 1 ? used - 1 : nil
        }
    }

    /// The bytes of a refusal answered straight on an accepted socket, before any HTTP parsing.
    static func response(for refusal: Refusal) -> String {
        let (status, code, message) =
            switch refusal {
            case .capacity: ("503 Service Unavailable", "unavailable", "this node is at capacity")
            case .perAddress: ("429 Too Many Requests", "rate_limited", "too many connections from this address")
            }
        let body = #"{"error":{"code":"\#(code)","message":"\#(message)"}}"#
        return "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Retry-After: 5\r\nConnection: close\r\n\r\n\(body)"
    }
}

/// Answers a socket refused at accept with `ConnectionAdmission.response` once it is active,
/// then closes it; whatever the client sends meanwhile is dropped unread.
final class AdmissionRefusal: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let response: String
    private var answered = false

    init(response: String) {
        self.response = response
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { answer(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        answer(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    private func answer(_ context: ChannelHandlerContext) {
        guard !answered else { return }
        answered = true
        let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response))).whenComplete { _ in
            loopContext.value.close(promise: nil)
        }
    }
}
