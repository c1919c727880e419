// Placeholder until the benchmark subcommands land (issues #3, #4, #5, #7).
import Foundation

FileHandle.standardError.write(Data("event-bench: no benchmark implemented yet (see issues #3, #4, #5, #7)\n".utf8))
exit(2)
