import ArgumentParser
import Engine

/// A `--precision` value: `auto` or a precision by name. The parser checks it and, for a bad
/// value, lists the choices; help shows the name as given (`auto`, not what it resolves to).
struct PrecisionChoice: ExpressibleByArgument, CustomStringConvertible {
    let name: String
    /// `auto` resolved for this CPU.
    let precision: Precision

    init?(argument: String) {
        guard let precision = Precision(choice: argument) else { return nil }
        self.name = argument
        self.precision = precision
    }

    static var allValueStrings: [String] { Precision.choices }
    var description: String { name }

    static let auto = PrecisionChoice(argument: "auto")!
    static let fp32 = PrecisionChoice(argument: "fp32")!
}
