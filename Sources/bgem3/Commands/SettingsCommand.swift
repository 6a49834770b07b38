import ArgumentParser

/// `bgem3 settings`: every `bgem3 serve` setting from its one declaration (``ServeSettings``), as
/// the Markdown table docs/server.md carries (a test keeps the two equal).
struct SettingsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "settings",
        abstract: "List every setting of `bgem3 serve`: variable, flag, what it accepts, default, and what it sets (a Markdown table).")

    func run() {
        print(ServeSettings.markdown)
    }
}
