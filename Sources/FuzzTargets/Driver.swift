import Glibc

/// libFuzzer's driver, from the runtime that `-sanitize=fuzzer` links into the fuzz executables
/// (this library is linked into nothing else).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// The target the C callback calls; set once, before the driver starts.
nonisolated(unsafe) private var currentTarget: ((UnsafeBufferPointer<UInt8>) -> Void)?

/// Runs libFuzzer with the process's arguments on `target` and exits with its status.
package func runFuzzer(_ target: @escaping (UnsafeBufferPointer<UInt8>) -> Void) -> Never {
    currentTarget = target
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        currentTarget?(UnsafeBufferPointer(start: data, count: size))
        return 0
    }
    exit(status)
}
