// Placeholder until issue #4 lands: the target exists so the package layout is complete, and it says
// so plainly instead of pretending to work.
import Foundation

FileHandle.standardError.write(Data("chnative: not implemented yet (see issue #4)\n".utf8))
exit(2)
