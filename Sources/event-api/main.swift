// Placeholder until issue #6 lands: the target exists so the package layout is complete, and it says
// so plainly instead of pretending to work.
import Foundation

FileHandle.standardError.write(Data("event-api: not implemented yet (see issue #6)\n".utf8))
exit(2)
