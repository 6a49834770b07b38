/// Why a test could not get what it needs (a fixture, the binary, a server): thrown rather than
/// recorded, so the test fails with this text and the support code needs no test framework.
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
