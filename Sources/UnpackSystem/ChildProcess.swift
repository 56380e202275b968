import Glibc

/// Programs oci-unpack starts: newuidmap/newgidmap and itself (user namespaces), credential helpers.
package enum ChildProcess {
    /// Starts `program` (looked up on PATH when `searchPath`) with `arguments` (`argv[0]` first)
    /// and `environment`; `files` maps this process's descriptors to the child's (`[pipe: 0]`),
    /// which keeps no other of them (all are close-on-exec).
    package static func spawn(
        _ program: String, arguments: [String], environment: [String], searchPath: Bool = false,
        files: [Int32: Int32] = [:]
    ) throws(SystemError) -> pid_t {
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        for (parent, child) in files { posix_spawn_file_actions_adddup2(&actions, parent, child) }
        var pid: pid_t = 0
        let rc =
            searchPath
            ? posix_spawnp(&pid, program, &actions, nil, &argv, &envp)
            : posix_spawn(&pid, program, &actions, nil, &argv, &envp)
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
    /// error discarded; its exit status and at most `outputLimit` bytes of its standard output
    /// (`nil` output when it wrote more).
    package static func run(_ program: String, arguments: [String], input: [UInt8], outputLimit: Int)
        throws(SystemError) -> (status: Int32, output: [UInt8]?)
    {
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
                files: [stdin[0]: 0, stdout[1]: 1, null: 2])
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
        try? writeAll(stdin[1], input, path: program)
        signal(SIGPIPE, ignored)
        close(stdin[1])
        // Closed before the wait: a child that writes past the limit gets EPIPE instead of
        // blocking on a full pipe for ever.
        let output = try? OwnedFD(stdout[0]).readAll(limit: outputLimit)
        return (wait(for: pid), output ?? nil)
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
