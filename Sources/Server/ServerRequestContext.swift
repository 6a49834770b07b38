import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import Scheduling

/// The request context of every route: Hummingbird's basics, the body decoder and its size limit,
/// the connection (so that work for a client that has gone away can be dropped), and, on the work
/// routes, the request's admission and deadline (set by ``AdmissionMiddleware``).
public struct ServerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let connection: ConnectionStatus
    /// Bytes a body may have (`BGE_M3_MAX_BODY_BYTES`); over it, 413.
    public var maxUploadSize: Int
    /// The request's hold on the server's memory; nil outside the work routes.
    var admission: AdmissionTicket?
    /// When the request gives up (504).
    var deadline: ContinuousClock.Instant
    /// The most tokens a request may carry (texts × tokens per text), for its admission.
    var maxRequestTokens: Int
    /// `X-Request-ID` as sent, or made up (``RequestIDMiddleware``); Cohere's rerank answers carry it as `id`.
    var requestID = ""

    public var requestDecoder: APIRequestDecoder { APIRequestDecoder() }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        connection = ConnectionStatus(channel: source.channel)
        maxUploadSize = ServerLimits().maxBodyBytes
        deadline = .now + .seconds(ServerLimits().requestTimeoutSeconds)
        maxRequestTokens = ServerLimits().maxRequestTokens
    }
}

/// Whether the client of a connection is still there.
struct ConnectionStatus: Sendable {
    let channel: any Channel

    /// True once the connection is closed or the client has closed its sending side. HTTP/1.1
    /// clients do not half-close while they wait for a response, so a closed input means the
    /// client is gone (Hummingbird keeps such a channel open, so `isActive` alone cannot tell).
    var isGone: Bool {
        !channel.isActive || ClosedInputs.shared.contains(ObjectIdentifier(channel))
    }
}

/// Notes connections whose input was closed (a handler in every connection's pipeline).
final class ConnectionWatch: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(ChannelEvent.inputClosed) = event as? ChannelEvent {
            ClosedInputs.shared.insert(ObjectIdentifier(context.channel))
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        ClosedInputs.shared.remove(ObjectIdentifier(context.channel))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        ClosedInputs.shared.remove(ObjectIdentifier(context.channel))
    }
}

/// Channels whose input is closed and which are still open.
final class ClosedInputs: Sendable {
    static let shared = ClosedInputs()
    private let channels = NIOLockedValueBox(Set<ObjectIdentifier>())

    func insert(_ id: ObjectIdentifier) { channels.withLockedValue { _ = $0.insert(id) } }
    func remove(_ id: ObjectIdentifier) { channels.withLockedValue { _ = $0.remove(id) } }
    func contains(_ id: ObjectIdentifier) -> Bool { channels.withLockedValue { $0.contains(id) } }
}
