import Logging
import OCIUnpack

/// swift-log's stderr handler, with every message's control characters escaped (see
/// `DisplayText`): warnings name entries and tags from the image, and one of them must not forge
/// lines or reach the terminal as an escape sequence.
struct EscapingLogHandler: LogHandler {
    private var base: StreamLogHandler

    static func standardError(label: String) -> EscapingLogHandler {
        EscapingLogHandler(base: StreamLogHandler.standardError(label: label))
    }

    var logLevel: Logger.Level {
        get { base.logLevel }
        set { base.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        event.message = Logger.Message(stringLiteral: DisplayText.escaping(event.message.description))
        base.log(event: event)
    }
}
