import FuzzTargets

@main
struct FuzzReferenceMain {
    static func main() { runFuzzer(FuzzReference.run) }
}
