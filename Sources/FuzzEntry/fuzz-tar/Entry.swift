import FuzzTargets

@main
struct FuzzTarMain {
    static func main() { runFuzzer(FuzzTar.run) }
}
