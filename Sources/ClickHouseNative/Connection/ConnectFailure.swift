#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix
import NIOSSL
import Foundation

/// Short, plain descriptions of why a connection could not be opened, for error messages that
/// reach people (an API's 503 body, a command line). NIO's own descriptions spell out its
/// internals ("Connection errors: SingleConnectionFailure(target: [IPv4]127.0.0.1/127.0.0.1:1,
/// error: connection reset (error set): Connection refused) (errno: 111))").
enum ConnectFailure {
    /// Why the TCP connection to the server could not be made.
    static func describe(_ error: Error) -> String {
        switch error {
        case let error as NIOConnectionError:
            if let dns = error.dnsAError ?? error.dnsAAAAError { return describe(dns) }
            let causes = error.connectionErrors.map { failure in
                (address: failure.target.ipAddress.map { failure.target.protocol == .inet6 ? "[\($0)]" : $0 } ?? "\(failure.target)",
                 cause: describe(failure.error))
            }
            if causes.isEmpty { return "\(error)" }
            // localhost is tried over IPv4 and IPv6, usually with the same outcome: say it once.
            if Set(causes.map(\.cause)).count == 1, let first = causes.first { return first.cause }
            return causes.map { "\($0.address): \($0.cause)" }.joined(separator: "; ")
        case let error as SocketAddressError.UnknownHost:
            return "cannot resolve \(error.host): \(error.errorDescription)"
        case let error as IOError:
            return "\(String(cString: strerror(error.errnoCode))) (errno \(error.errnoCode))"
        case ChannelError.connectTimeout(let amount):
            return "no connection within \(amount.milliseconds) ms"
        default:
            return "\(error)"
        }
    }

    /// Why the handshake with a server that accepted the TCP connection failed, with a hint at the
    /// usual cause: a port that is not the native protocol's, or TLS on one side only.
    static func describeHandshake(_ error: Error, tls: Bool) -> String {
        switch error {
        case NIOSSLError.handshakeFailed:
            return "TLS handshake failed: " + describeTLS(error as! NIOSSLError)
        case let error as NIOSSLError:
            return "TLS error before the server's Hello: " + "\(error)".trimmingCharacters(in: .whitespaces)
        case let error as ClickHouseProtocolError:
            // A native server's first packet is Hello (0) or Exception (2); 72 is "H", as in "HTTP/1.1
            // 400". Only a first byte that is no packet at all points at another service: a Hello
            // this client fails to decode is its own fault, said as such.
            guard let code = error.unknownPacketCode else {
                return "cannot decode the server's Hello: \(error.message)"
            }
            let what = code == 72 ? "in HTTP (usually port 8123)" : "with something else (unknown packet \(code))"
            return "the server answered \(what), not in ClickHouse's native protocol: the native port is usually 9000, 9440 with TLS"
        case is IOError, ClickHouseConnectionError.closed(ClickHouseConnection.closedByServer):
            let cause = error is IOError ? " (\(describe(error)))" : ""
            // Also what a server does that is restarting, or out of connections: a hint, not a verdict.
            return tls ? "the connection ended during the handshake\(cause)"
                : "the server closed the connection before its Hello\(cause); if this is a secure port (usually 9440), it needs TLS"
        default:
            return "handshake failed: \(error)"
        }
    }

    /// BoringSSL's reason (its descriptions carry error numbers and source paths), with what it
    /// usually means for a ClickHouse client.
    static func describeTLS(_ error: NIOSSLError) -> String {
        guard case let .handshakeFailed(.sslError(stack)) = error else { return "\(error)" }
        let reasons = stack.map { entry -> String in
            // "Error: 268435703 error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER at ssl/tls_record.cc:127"
            let text = "\(entry)"
            let head = text.range(of: " at ").map { String(text[..<$0.lowerBound]) } ?? text
            return head.split(separator: ":").last.map(String.init) ?? text
        }
        switch reasons.first {
        case "WRONG_VERSION_NUMBER":
            return "the server does not speak TLS on this port (WRONG_VERSION_NUMBER): the plain native port is usually 9000, the secure one 9440"
        case "CERTIFICATE_VERIFY_FAILED":
            return "the server's certificate is not trusted (CERTIFICATE_VERIFY_FAILED): trust the CA that signed it, or check the server name it was issued for"
        default:
            return reasons.isEmpty ? "\(error)" : reasons.joined(separator: ", ")
        }
    }
}
