import ArgumentParser

@main
struct EventBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "event-bench",
        abstract: "Benchmarks of the event-analytics stack; each prints its measurements.",
        subcommands: [CodecBenchmark.self, ReadBenchmark.self, InsertBenchmark.self, PipelineBenchmark.self, DrainBenchmark.self, BareEndpointCommand.self,
                      VerifyCommand.self])
}
