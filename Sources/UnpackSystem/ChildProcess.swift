import Glibc

/// Programs oci-unpack starts: newuidmap/newgidmap and itself (user namespaces), credential helpers.
package enum ChildProcess {
    /// Starts `program` (looked up on PATH when `searchPath`) with `arguments` (`argv[0]` first)
    /// and `environment`; `files` maps this process's descriptors to the child's (`[pipe: 0]`),
    /// which keeps no other of them (all are close-on-exec). With `newProcessGroup` the child leads
    /// a process group of its own (whose id is its pid), which can be killed whole.
    package static func spawn(
        _ program: String, arguments: [String], environment: [String], searchPath: Bool = false,
        files: [Int32: Int32] = [:], newProcessGroup: Bool = false
    ) throws(SystemError) -> pid_t {
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        if newProcessGroup {
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        defer {
            posix_spawnattr_destroy(&attributes)
            posix_spawn_file_actions_destroy(&actions)
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        for (parent, child) in files { posix_spawn_file_actions_adddup2(&actions, parent, child) }
        var pid: pid_t = 0
        let rc =
            searchPath
            ? posix_spawnp(&pid, program, &actions, &attributes, &argv, &envp)
            : posix_spawn(&pid, program, &actions, &attributes, &argv, &envp)
        guard rc == 0 else { throw SystemError(call: "posix_spawn", errno: rc, path: program) }
        return pid
    }

    /// The exit status of `pid` (128 + N for death by signal N).
    package static func wait(for pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return 1 }
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Runs `program` from PATH with `arguments`, `input` on its standard input and its standard
    /// error discarded, in a process group of its own, for at most `timeout` seconds: its exit
    /// status and at most `outputLimit` bytes of its standard output (`nil` output when it wrote
    /// more). When it exits, or the time is up (`timedOut`), its whole process group is killed: a
    /// background child that keeps the output pipe open cannot hold the caller.
    package static func run(
        _ program: String, arguments: [String], input: [UInt8], outputLimit: Int, timeout: Double
    ) throws(SystemError) -> (status: Int32, output: [UInt8]?, timedOut: Bool) {
        var stdin: [Int32] = [0, 0]
        var stdout: [Int32] = [0, 0]
        guard pipe(&stdin) == 0 else { throw SystemError(call: "pipe", errno: errno) }
        guard pipe(&stdout) == 0 else {
            close(stdin[0])
            close(stdin[1])
            throw SystemError(call: "pipe", errno: errno)
        }
        for fd in stdin + stdout { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        let pid: pid_t
        do throws(SystemError) {
            pid = try spawn(
                program, arguments: [program] + arguments, environment: ProcessEnvironment.current, searchPath: true,
                files: [stdin[0]: 0, stdout[1]: 1, null: 2], newProcessGroup: true)
        } catch {
            for fd in stdin + stdout + [null] { close(fd) }
            throw error
        }
        close(stdin[0])
        close(stdout[1])
        close(null)
        // The input is small (a server name): it fits the pipe, so writing first cannot block on
        // a child that writes before it reads. A child that exits unread gives EPIPE, not SIGPIPE.
        let ignored = signal(SIGPIPE, SIG_IGN)
        _ = fcntl(stdin[1], F_SETFL, fcntl(stdin[1], F_GETFL) | O_NONBLOCK)
        try? writeAll(stdin[1], input, path: program)
        signal(SIGPIPE, ignored)
        close(stdin[1])

        var end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &end)
        let deadline = Double(end.tv_sec) + Double(end.tv_nsec) / 1e9 + max(timeout, 0)
        func secondsLeft() -> Double {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            return deadline - (Double(now.tv_sec) + Double(now.tv_nsec) / 1e9)
        }
        let output = OwnedFD(stdout[0])
        _ = fcntl(output.rawValue, F_SETFL, fcntl(output.rawValue, F_GETFL) | O_NONBLOCK)
        var bytes: [UInt8] = []
        var overflowed = false
        var pipeOpen = true
        var exited = false
        var timedOut = false
        var chunk = [UInt8](repeating: 0, count: 4096)
        // Read while the pipe is open and the child runs; after it exited, what it left in the pipe.
        while pipeOpen {
            if !exited, childHasExited(pid) { exited = true }
            var descriptor = pollfd(fd: output.rawValue, events: Int16(POLLIN), revents: 0)
            let left = secondsLeft()
            if left <= 0 {
                timedOut = !exited
                break
            }
            let ready = exited ? 1 : poll(&descriptor, 1, Int32(min(left, 0.05) * 1000) + 1)
            guard ready > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { read(output.rawValue, $0.baseAddress, $0.count) }
            if n > 0 {
                // Past the limit reading stops, and the group is killed below without a wait.
                guard bytes.count + n <= outputLimit else {
                    overflowed = true
                    break
                }
                bytes += chunk[..<n]
            } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                pipeOpen = false
            } else if exited {
                break  // nothing more buffered; a background child may hold the pipe open
            }
        }
        // Wait for the child itself within what is left of the time (not after it wrote too much).
        while !exited && !timedOut && !overflowed {
            if childHasExited(pid) {
                exited = true
            } else if secondsLeft() <= 0 {
                timedOut = true
            } else {
                usleep(10_000)
            }
        }
        // The group goes: a helper that timed out, and whatever it left running.
        kill(-pid, SIGKILL)
        let status = wait(for: pid)
        return (status, overflowed ? nil : bytes, timedOut)
    }
}

/// This process's environment, as `NAME=VALUE` strings.
enum ProcessEnvironment {
    static var current: [String] {
        var out: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            out.append(String(cString: entry))
            pointer += 1
        }
        return out
    }
}
