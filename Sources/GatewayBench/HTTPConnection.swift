import NIOCore
import NIOHTTP1

/// A keep-alive HTTP/1.1 client connection on the generator's event loop, one request at a
/// time, answers to a callback: used to create groups and to drive long-poll receivers without a
/// task per receiver.
final class HTTPConnection: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    /// A request's answer: the status (0 when the connection ended first) and the body.
    typealias Completion = (_ status: Int, _ body: ByteBuffer) -> Void

    private struct Pending {
        var method: HTTPMethod
        var uri: String
        var token: String?
        var body: ByteBuffer?
        var completion: Completion
    }

    private let host: String
    private var context: ChannelHandlerContext?
    private var queue: [Pending] = []
    private var current: Pending?
    private var status = 0
    private var body = ByteBuffer()
    /// Called once when the connection ends.
    var onClose: (() -> Void)?

    init(host: String) {
        self.host = host
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        sendNext()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let failed = (current.map { [$0] } ?? []) + queue
        current = nil
        queue = []
        self.context = nil
        for request in failed { request.completion(0, ByteBuffer()) }
        onClose?()
        onClose = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Sends a request once those before it are answered.
    func request(_ method: HTTPMethod, _ uri: String, token: String?, body: ByteBuffer? = nil, completion: @escaping Completion) {
        queue.append(Pending(method: method, uri: uri, token: token, body: body, completion: completion))
        if current == nil, context?.channel.isActive == true { sendNext() }
    }

    func close() {
        context?.close(promise: nil)
    }

    private func sendNext() {
        guard current == nil, !queue.isEmpty, let context else { return }
        let request = queue.removeFirst()
        current = request
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        if let token = request.token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        headers.add(name: "Content-Length", value: String(request.body?.readableBytes ?? 0))
        if request.body != nil { headers.add(name: "Content-Type", value: "application/json") }
        let head = HTTPRequestHead(version: .http1_1, method: request.method, uri: request.uri, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let body = request.body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
            body.clear()
        case .body(var part):
            body.writeBuffer(&part)
        case .end:
            guard let request = current else { return }
            current = nil
            let answer = body
            body = ByteBuffer()
            request.completion(status, answer)
            sendNext()
        }
    }
}
