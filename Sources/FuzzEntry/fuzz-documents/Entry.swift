import FuzzTargets

@main
struct FuzzDocumentsMain {
    static func main() { runFuzzer(FuzzDocuments.run) }
}
