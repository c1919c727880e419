// Placeholder until issue #5 lands: the target exists so the package layout is complete, and it says
// so plainly instead of pretending to work.
import Foundation

FileHandle.standardError.write(Data("event-consumer: not implemented yet (see issue #5)\n".utf8))
exit(2)
