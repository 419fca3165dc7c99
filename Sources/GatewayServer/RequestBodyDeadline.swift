import GatewayCore
import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Closes a connection whose request has not arrived whole `limits.request_timeout_ms` after
/// its head: a body sent a byte at a time (slowloris) holds a connection, a route's task and
/// its buffers no longer than that. Installed after the HTTP codec on every public connection
/// that does not upgrade.
final class RequestBodyDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    let timeoutMs: Int64
    /// The gateway's clock: the deadline is a time on it.
    let clock: any GatewayClock
    private var timer: ClockTimer?

    init(timeoutMs: Int64, clock: any GatewayClock) {
        self.timeoutMs = timeoutMs
        self.clock = clock
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            timer?.cancel()
            let channel = context.channel
            timer = clock.schedule(at: clock.nowMillis() + timeoutMs, on: context.eventLoop) { channel.close(promise: nil) }
        case .end:
            timer?.cancel()
            timer = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }
}
