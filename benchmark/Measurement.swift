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

    /// Measures work done in this process (all its threads). The peak resident size is this
    /// piece of work's: the kernel's high-water mark is reset first (`/proc/self/clear_refs`);
    /// getrusage's `ru_maxrss` is the whole process lifetime's, earlier phases included.
    static func inProcess(_ body: () async throws -> Void) async rethrows -> Measurement {
        let reset: Bool = {
            let file = open("/proc/self/clear_refs", O_WRONLY)
            guard file >= 0 else { return false }
            defer { close(file) }
            return write(file, "5", 1) == 1
        }()
        var before = rusage()
        getrusage(RUSAGE_SELF.rawValue, &before)
        let start = ContinuousClock.now
        try await body()
        let wall = seconds(ContinuousClock.now - start)
        var after = rusage()
        getrusage(RUSAGE_SELF.rawValue, &after)
        let peak = reset ? DrainBenchmark.peakResidentMegabytes(getpid()) : Double.nan  // nan: unknown, printed as such
        return Measurement(wallSeconds: wall, cpuSeconds: cpu(after) - cpu(before), peakResidentMegabytes: peak)
    }

    /// Runs a command (stdin from `input` if given, stdout discarded) and measures it, with the
    /// child's own resource use from wait4 (getrusage's RUSAGE_CHILDREN holds the largest child
    /// ever waited for, so a second run inherited the first one's peak).
    static func child(_ arguments: [String], input: URL? = nil) throws -> Measurement {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, input?.path ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        let argv = (["/usr/bin/env"] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let start = ContinuousClock.now
        let spawned = posix_spawn(&pid, "/usr/bin/env", &actions, nil, argv, environ)
        guard spawned == 0 else { throw ValidationFailure("cannot start \(arguments.joined(separator: " ")): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        let wall = seconds(ContinuousClock.now - start)
        // WIFEXITED and WEXITSTATUS by hand: Glibc's macros are not imported.
        guard status & 0x7F == 0, (status >> 8) & 0xFF == 0 else {
            throw ValidationFailure("\(arguments.joined(separator: " ")) ended with status \(status)")
        }
        return Measurement(wallSeconds: wall, cpuSeconds: cpu(usage), peakResidentMegabytes: Double(usage.ru_maxrss) / 1024)
    }
}

/// CPU time of a process from /proc (Linux); nil where that is not readable.
enum ProcessCPU {
    static func seconds(pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after "(comm)": state is field 3, utime 14, stime 15 (proc(5)).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (user + system) / max(ticks, 1)
    }

    /// The process listening on TCP `port` of this machine (IPv4 or IPv6), if /proc shows it to us.
    static func listener(port: Int) -> Int32? {
        var inodes = Set<String>()
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                // local_address is "ADDR:PORT" in hex, st 0A is LISTEN, inode is field 10.
                guard fields.count > 9, fields[3] == "0A", let colon = fields[1].lastIndex(of: ":"),
                      Int(fields[1][fields[1].index(after: colon)...], radix: 16) == port else { continue }
                inodes.insert(String(fields[9]))
            }
        }
        guard !inodes.isEmpty, let pids = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for pid in pids where pid.allSatisfy(\.isNumber) {
            guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { continue }
            for fd in fds {
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                      target.hasPrefix("socket:["), inodes.contains(String(target.dropFirst(8).dropLast())) else { continue }
                return Int32(pid)
            }
        }
        return nil
    }
}

/// The whole machine's CPU time from /proc/stat (Linux), to tell a phase that waits (idle cores
/// while requests wait for the broker) from one that has run out of CPU.
struct MachineCPU {
    /// Idle and I/O-wait time, and all time, summed over every core (in clock ticks).
    var idle: UInt64
    var total: UInt64

    static func sample() -> MachineCPU? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
        // user nice system idle iowait irq softirq steal (guest time is already within user).
        let fields = line.split(separator: " ").dropFirst().prefix(8).compactMap { UInt64($0) }
        guard fields.count == 8 else { return nil }
        return MachineCPU(idle: fields[3] + fields[4], total: fields.reduce(0, +))
    }

    /// The share of the machine's CPU time that stayed idle between `earlier` and `self`.
    func idleFraction(since earlier: MachineCPU) -> Double? {
        // (I/O-wait may go backwards in /proc/stat, so the difference is clamped, not trusted.)
        guard total > earlier.total else { return nil }
        return Double(idle >= earlier.idle ? idle - earlier.idle : 0) / Double(total - earlier.total)
    }
}

struct ValidationFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func ratio(_ ours: Double, _ theirs: Double) -> String { String(format: "%.2fx", ours / max(theirs, 1e-9)) }
func fmt3(_ x: Double) -> String { String(format: "%.3f", x) }
