import OCIImage
import UnpackSystem

extension ImageReference {
    /// Parses one of the accepted forms (see `init(parsing:isDirectory:isFile:)`), asking the
    /// file system whether a layout directory or an archive exists where a colon could belong to
    /// the path (`/data/img:2024`).
    public init(parsing string: String) throws(UnpackError) {
        try self.init(
            parsing: string, isDirectory: { (try? fileStatus($0).get())?.isDirectory == true },
            isFile: { (try? fileStatus($0).get())?.isRegularFile == true })
    }
}
