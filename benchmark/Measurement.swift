import Foundation

/// Wall time and CPU time (user + system) of a piece of work, for this process or a child.
struct Measurement {
    var wallSeconds: Double
    var cpuSeconds: Double
    var peakResidentMegabytes: Double

    static func cpu(_ usage: rusage) -> Double {
        Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Measures work done in this process (all its threads).
    static func inProcess(_ body: () async throws -> Void) async rethrows -> Measurement {
        var before = rusage()
        getrusage(RUSAGE_SELF.rawValue, &before)
        let start = ContinuousClock.now
        try await body()
        let wall = seconds(ContinuousClock.now - start)
        var after = rusage()
        getrusage(RUSAGE_SELF.rawValue, &after)
        return Measurement(wallSeconds: wall, cpuSeconds: cpu(after) - cpu(before), peakResidentMegabytes: Double(after.ru_maxrss) / 1024)
    }

    /// Runs a command (stdin from `input` if given, stdout discarded) and measures it.
    static func child(_ arguments: [String], input: URL? = nil) throws -> Measurement {
        var before = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &before)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        if let input { process.standardInput = try FileHandle(forReadingFrom: input) }
        let start = ContinuousClock.now
        try process.run()
        process.waitUntilExit()
        let wall = seconds(ContinuousClock.now - start)
        guard process.terminationStatus == 0 else {
            throw ValidationFailure("\(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
        }
        var after = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &after)
        return Measurement(wallSeconds: wall, cpuSeconds: cpu(after) - cpu(before), peakResidentMegabytes: Double(after.ru_maxrss) / 1024)
    }
}

struct ValidationFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func ratio(_ ours: Double, _ theirs: Double) -> String { String(format: "%.2fx", ours / max(theirs, 1e-9)) }
func fmt3(_ x: Double) -> String { String(format: "%.3f", x) }
