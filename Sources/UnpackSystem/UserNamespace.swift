internal import CShims
import Glibc

/// `--userns auto`: an ordinary user's unpack runs as root in a user namespace that maps the user
/// to root and the user's subordinate ids (/etc/subuid, /etc/subgid) to 1 and up, as podman
/// does, so that the image's owners are real (shifted) on disk. The maps are written by the
/// setuid `newuidmap` and `newgidmap` of shadow's uidmap package, which check them against those
/// files.
///
/// The unpacker starts itself again (`launch`); the new process enters the namespace before it
/// does anything else (`enterIfLaunched`, first thing in `main`, while it has one thread), waits
/// until the maps are written, and runs the command as root there.
package enum UserNamespace {
    /// One line of an id map (the one `IDMap.Range` type).
    package typealias Range = IDMap.Range

    /// How a launched unpack ended.
    package enum Outcome: Sendable, Equatable {
        /// The unpacker exited with this status (128 + N for death by signal N).
        case exited(Int32)
        /// `tool` (newuidmap or newgidmap) could not write the maps; it said why on stderr.
        case mappingFailed(tool: String, status: Int32)
    }

    static let syncVariable = "OCI_UNPACK_USERNS_SYNC"

    /// Whether this process entered its user namespace through `enterIfLaunched`.
    package nonisolated(unsafe) private(set) static var entered = false

    /// Whether this process's user has subordinate uids and gids in /etc/subuid and /etc/subgid
    /// (what `--userns auto` needs).
    package static func userHasSubordinateIDs() -> Bool {
        let uid = geteuid()
        let name = getpwuid(uid).flatMap { $0.pointee.pw_name.map { String(cString: $0) } }
        for file in ["/etc/subuid", "/etc/subgid"] {
            guard let fd = try? OwnedFD.openForReading(file), let bytes = try? fd.readAll(limit: 1 << 20),
                !subordinateRanges(in: String(decoding: bytes, as: UTF8.self), name: name, id: uid).isEmpty
            else { return false }
        }
        return true
    }

    /// The subordinate ranges of the user named `name` (or numbered `id`) in a file of
    /// `NAME:START:COUNT` lines (/etc/subuid, /etc/subgid), in file order.
    package static func subordinateRanges(in text: String, name: String?, id: UInt32) -> [(
        start: UInt32, count: UInt32
    )] {
        var ranges: [(start: UInt32, count: UInt32)] = []
        let number = String(id)
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 3 else { continue }
            let owner = fields[0]
            guard owner == number || (name != nil && owner == name),
                let start = UInt32(fields[1]), let count = UInt32(fields[2]), count > 0
            else { continue }
            ranges.append((start, count))
        }
        return ranges
    }

    /// The podman layout for a user `id` with subordinate `ranges`: the user is root, the
    /// subordinate ids follow from 1.
    package static func layout(id: UInt32, ranges: [(start: UInt32, count: UInt32)]) -> [Range] {
        var map = [Range(containerID: 0, hostID: id, size: 1)]
        var next: UInt64 = 1
        for range in ranges.prefix(339) where next < UInt64(UInt32.max) {
            let count = UInt32(min(UInt64(range.count), UInt64(UInt32.max) - next))
            map.append(Range(containerID: UInt32(next), hostID: range.start, size: count))
            next += UInt64(count)
        }
        return map
    }

    /// In a process `launch` started: enters a new user namespace, tells the parent, and waits
    /// until it has written the maps. Returns false in any other process. A failure of the
    /// parent's (it reports it) ends this process at once.
    package static func enterIfLaunched() throws(SystemError) -> Bool {
        guard let value = getenv(syncVariable) else { return false }
        let fields = String(cString: value).split(separator: ",").compactMap { Int32($0) }
        unsetenv(syncVariable)
        guard fields.count == 2 else { return false }
        let (fromParent, toParent) = (fields[0], fields[1])
        defer {
            close(fromParent)
            close(toParent)
        }
        if CShims_unshare_user() != 0 {
            let error = SystemError(call: "unshare(CLONE_NEWUSER)", errno: errno)
            _ = write(toParent, "x", 1)
            throw error
        }
        guard write(toParent, "r", 1) == 1 else { throw SystemError(call: "write", errno: errno) }
        var answer: UInt8 = 0
        let n = retryingRead(fromParent, &answer)
        guard n == 1, answer == UInt8(ascii: "g") else { exit(125) }
        entered = true
        return true
    }

    /// Starts this executable again with the same arguments in a new user namespace with these
    /// maps, forwards terminating signals to it, and waits for it.
    package static func launch(uids: [Range], gids: [Range]) throws(SystemError) -> Outcome {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0 else { throw SystemError(call: "pipe", errno: errno) }
        guard pipe(&fromChild) == 0 else { throw SystemError(call: "pipe", errno: errno) }
        // The parent's ends do not reach the child.
        _ = fcntl(toChild[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fromChild[0], F_SETFD, FD_CLOEXEC)
        let environment =
            ProcessEnvironment.current.filter { !$0.hasPrefix(syncVariable + "=") }
            + ["\(syncVariable)=\(toChild[0]),\(fromChild[1])"]
        let child = try ChildProcess.spawn("/proc/self/exe", arguments: CommandLine.arguments, environment: environment)
        close(toChild[0])
        close(fromChild[1])
        defer {
            close(toChild[1])
            close(fromChild[0])
        }
        _ = CShims_forward_terminating_signals(child)
        var ready: UInt8 = 0
        guard retryingRead(fromChild[0], &ready) == 1, ready == UInt8(ascii: "r") else {
            return .exited(ChildProcess.wait(for: child))  // it could not enter a namespace, and said why
        }
        for (tool, map) in [("newuidmap", uids), ("newgidmap", gids)] {
            let arguments =
                [tool, String(child)] + map.flatMap { [String($0.containerID), String($0.hostID), String($0.size)] }
            let status = try ChildProcess.wait(
                for: ChildProcess.spawn(
                    tool, arguments: arguments, environment: ProcessEnvironment.current, searchPath: true))
            if status != 0 {
                _ = write(toChild[1], "x", 1)
                _ = ChildProcess.wait(for: child)
                return .mappingFailed(tool: tool, status: status)
            }
        }
        guard write(toChild[1], "g", 1) == 1 else { throw SystemError(call: "write", errno: errno) }
        return .exited(ChildProcess.wait(for: child))
    }

    /// The maps of this process's user namespace as /proc/self/uid_map and gid_map show them
    /// (inside, outside in the parent namespace, count).
    package static func currentMaps() -> (uids: [Range], gids: [Range])? {
        func read(_ path: String) -> [Range]? {
            guard let bytes = try? OwnedFD.openForReading(path).readAll(limit: 1 << 16) else { return nil }
            return IDMap.parsingKernelMap(bytes)
        }
        guard let uids = read("/proc/self/uid_map"), let gids = read("/proc/self/gid_map") else { return nil }
        return (uids, gids)
    }

    private static func retryingRead(_ fd: Int32, _ byte: inout UInt8) -> Int {
        while true {
            let n = read(fd, &byte, 1)
            if n >= 0 || errno != EINTR { return n }
        }
    }
}
