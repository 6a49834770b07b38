import ArgumentParser
import Engine
import Foundation
import Logging
import Scheduling

/// A `--precision` value: `auto` or a precision by name. The parser checks it and, for a bad
/// value, lists the choices; help shows the name as given.
struct PrecisionChoice: ExpressibleByArgument, CustomStringConvertible {
    let request: PrecisionRequest

    init?(argument: String) {
        guard let request = PrecisionRequest(argument) else { return nil }
        self.request = request
    }

    static var allValueStrings: [String] { PrecisionRequest.choices }
    var description: String { request.description }

    static let auto = PrecisionChoice(argument: "auto")!
    static let fp32 = PrecisionChoice(argument: "fp32")!

    /// Refuses a precision this CPU does not run, naming what it lacks.
    func validate() throws {
        if case .fixed(let precision) = request, let reason = precision.unsupportedReason {
            throw CommandFailure("--precision \(precision.rawValue): \(reason)")
        }
    }

    /// The model loaded at the precision this choice resolves to on its weights (``PrecisionPlanner``:
    /// `auto` measures, or reads the cached figures), with the decision.
    func load(directory: URL, threads: Int?, limit: MemoryLimit, cacheDirectory: URL?, logger: Logger) throws -> (model: BGEM3Model, decision: PrecisionDecision) {
        try validate()
        var settings = MemorySettings()
        settings.cacheDirectory = cacheDirectory
        let planner = PrecisionPlanner(directory: directory, threads: threads, limit: limit, settings: settings, engineVersion: BGEM3Version.string,
                                       logger: logger)
        do {
            let (decision, model) = try planner.decide(request)
            return (model, decision)
        } catch let error as WeightLoadError {
            throw CommandFailure(error.description)
        } catch let error as EngineError {
            throw CommandFailure(error.description)
        }
    }
}

extension Precision: ExpressibleByArgument {}
